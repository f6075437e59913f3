package signals_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/signals"
	"github.com/verdict-engine/verdict/store"
)

type velocityFunc func(context.Context, signals.Event) (signals.Observation, error)

func (f velocityFunc) Observe(ctx context.Context, ev signals.Event) (signals.Observation, error) {
	return f(ctx, ev)
}

type verificationFunc func(context.Context, string) (store.Verification, error)

func (f verificationFunc) LatestVerification(ctx context.Context, id string) (store.Verification, error) {
	return f(ctx, id)
}

type staticLists struct{ entries []store.ListEntry }

func (s staticLists) PutListEntry(context.Context, store.ListEntry, string) (bool, error) {
	return false, errors.New("read only")
}
func (s staticLists) DeleteListEntry(context.Context, string, string, string, string) error {
	return errors.New("read only")
}
func (s staticLists) ListEntries(context.Context, string) ([]store.ListEntry, error) { return nil, nil }
func (s staticLists) AllListEntries(context.Context) ([]store.ListEntry, error) {
	return s.entries, nil
}
func (s staticLists) ListsVersion(context.Context) (int64, error) { return 1, nil }

func TestGather(t *testing.T) {
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	lists, err := signals.NewLists(context.Background(), staticLists{[]store.ListEntry{{List: "watch_device", Value: "d1"}}})
	if err != nil {
		t.Fatal(err)
	}
	req := signals.Request{EventID: "e1", Action: "login", UserID: "u1", DeviceID: "d1", IP: netip.MustParseAddr("10.0.0.1"), At: at, Sources: engine.AllSources}
	okVel := velocityFunc(func(_ context.Context, ev signals.Event) (signals.Observation, error) {
		if ev.IP != "10.0.0.1" || ev.ID != "e1" || !ev.At.Equal(at) {
			t.Errorf("event = %+v", ev)
		}
		return signals.Observation{User: engine.Window{Count1m: 2}, DeviceKnown: true, DeviceFirstSeen: at.Add(-48 * time.Hour), DeviceUsers30d: 3}, nil
	})
	okVer := verificationFunc(func(context.Context, string) (store.Verification, error) {
		return store.Verification{Status: "approved", Provider: "onfido", Score: 0.8, UpdatedAt: at.Add(-72 * time.Hour)}, nil
	})

	t.Run("all sources", func(t *testing.T) {
		g := signals.NewGatherer(okVel, lists, okVer)
		r := g.Gather(context.Background(), req)
		s := r.Signals
		if len(s.Unavailable) != 0 || s.Velocity.User.Count1m != 2 || !s.Device.Known || s.Device.AgeHours != 48 ||
			s.Device.UsersSeen != 3 || !s.Device.Flagged || s.Verification.Status != "approved" || s.Verification.AgeDays != 3 ||
			s.Verification.ReasonCodes == nil || !s.Lists["watch_device"] {
			t.Fatalf("signals = %+v", s)
		}
	})
	t.Run("no verification", func(t *testing.T) {
		g := signals.NewGatherer(okVel, lists, verificationFunc(func(context.Context, string) (store.Verification, error) {
			return store.Verification{}, store.ErrNotFound
		}))
		s := g.Gather(context.Background(), req).Signals
		if s.Verification.Status != "none" || len(s.Unavailable) != 0 {
			t.Fatalf("signals = %+v", s)
		}
	})
	t.Run("failures and timeouts are unavailable, within the deadline", func(t *testing.T) {
		slow := verificationFunc(func(ctx context.Context, _ string) (store.Verification, error) {
			time.Sleep(time.Second) // ignores ctx on purpose
			return store.Verification{}, nil
		})
		down := velocityFunc(func(context.Context, signals.Event) (signals.Observation, error) {
			return signals.Observation{}, errors.New("dial tcp: connection refused")
		})
		g := signals.NewGatherer(down, lists, slow, signals.WithSourceTimeout(30*time.Millisecond))
		start := time.Now()
		r := g.Gather(context.Background(), req)
		if el := time.Since(start); el > 200*time.Millisecond {
			t.Fatalf("gather took %v", el)
		}
		for _, src := range []string{signals.SourceVelocity, signals.SourceDevice, signals.SourceVerification} {
			if !slices.Contains(r.Signals.Unavailable, src) || r.Errors[src] == nil {
				t.Errorf("%s not unavailable: %v", src, r.Signals.Unavailable)
			}
		}
		if !r.Signals.Device.Flagged {
			t.Error("lists still apply when velocity is down")
		}
	})
	t.Run("only the sources asked for; the velocity event is always recorded", func(t *testing.T) {
		observed := 0
		vel := velocityFunc(func(context.Context, signals.Event) (signals.Observation, error) {
			observed++
			return signals.Observation{}, errors.New("redis down")
		})
		asked := 0
		ver := verificationFunc(func(context.Context, string) (store.Verification, error) {
			asked++
			return store.Verification{}, errors.New("lock timeout")
		})
		g := signals.NewGatherer(vel, lists, ver)
		lreq := req
		lreq.Sources = engine.SourceLists
		r := g.Gather(context.Background(), lreq)
		s := r.Signals
		if observed != 1 || asked != 0 {
			t.Fatalf("velocity observed %d times, verification asked %d times; want 1, 0", observed, asked)
		}
		if len(s.Unavailable) != 0 || !slices.Equal(s.NotGathered, []string{"velocity", "device", "verification"}) || !s.Lists["watch_device"] {
			t.Fatalf("signals = %+v", s)
		}
		if r.Errors[signals.SourceVelocity] == nil {
			t.Error("a velocity event that could not be recorded is not reported in Errors")
		}
		js, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(js, &doc); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"velocity", "device", "verification"} {
			if _, ok := doc[k]; ok {
				t.Errorf("source %s not gathered but in the document: %s", k, js)
			}
		}

		// Device without lists: the lists are matched for device.flagged, not reported.
		lreq.Sources = engine.SourceDevice
		s = signals.NewGatherer(okVel, lists, ver).Gather(context.Background(), lreq).Signals
		if !s.Device.Known || !s.Device.Flagged || s.Lists != nil || len(s.Unavailable) != 0 ||
			!slices.Equal(s.NotGathered, []string{"velocity", "lists", "verification"}) {
			t.Fatalf("signals = %+v", s)
		}
		// A source asked for still fails.
		lreq.Sources = engine.SourceVerification
		s = g.Gather(context.Background(), lreq).Signals
		if !slices.Equal(s.Unavailable, []string{"verification"}) {
			t.Fatalf("unavailable = %v, want [verification]", s.Unavailable)
		}
	})
}
