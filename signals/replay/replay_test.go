package replay_test

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/signals/replay"
)

// naive recomputes every signal of event i from events[0..i] with plain loops, straight
// from the documented semantics: per-action counts over (at-w, at], distinct users per
// device and IP and devices per user over 24 h across actions, device known when seen
// before, age since first seen, distinct users on the device over 30 days.
func naive(evs []replay.Event, i int) (engine.Velocity, engine.DeviceReputation) {
	e := evs[i]
	at := e.At
	win := func(match func(replay.Event) bool, w time.Duration) int64 {
		n := int64(0)
		for _, x := range evs[:i+1] {
			if x.Action == e.Action && match(x) && x.At.After(at.Add(-w)) {
				n++
			}
		}
		return n
	}
	distinct := func(match func(replay.Event) bool, key func(replay.Event) string, w time.Duration) int64 {
		set := map[string]bool{}
		for _, x := range evs[:i+1] {
			if match(x) && key(x) != "" && x.At.After(at.Add(-w)) {
				set[key(x)] = true
			}
		}
		return int64(len(set))
	}
	user := func(x replay.Event) bool { return e.UserID != "" && x.UserID == e.UserID }
	dev := func(x replay.Event) bool { return e.DeviceID != "" && x.DeviceID == e.DeviceID }
	ip := func(x replay.Event) bool { return e.IP != "" && x.IP == e.IP }
	userKey := func(x replay.Event) string { return x.UserID }
	devKey := func(x replay.Event) string { return x.DeviceID }
	window := func(m func(replay.Event) bool) engine.Window {
		return engine.Window{Count1m: win(m, time.Minute), Count1h: win(m, time.Hour), Count24h: win(m, 24*time.Hour)}
	}
	var v engine.Velocity
	if e.UserID != "" {
		v.User = window(user)
		v.User.DistinctDevices24h = distinct(user, devKey, 24*time.Hour)
	}
	if e.DeviceID != "" {
		v.Device = window(dev)
		v.Device.DistinctUsers24h = distinct(dev, userKey, 24*time.Hour)
	}
	if e.IP != "" {
		v.IP = window(ip)
		v.IP.DistinctUsers24h = distinct(ip, userKey, 24*time.Hour)
	}
	var d engine.DeviceReputation
	if e.DeviceID != "" {
		d.UsersSeen = distinct(dev, userKey, 30*24*time.Hour)
		for _, x := range evs[:i] {
			if x.DeviceID == e.DeviceID {
				d.Known, d.AgeHours = true, at.Sub(x.At).Hours()
				break
			}
		}
	}
	return v, d
}

func TestReplayMatchesNaive(t *testing.T) {
	t.Parallel()
	for seed := range uint64(3) {
		r := rand.New(rand.NewPCG(seed, 7))
		at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		var evs []replay.Event
		for i := range 1000 {
			// Bursts within seconds, gaps up to hours; about 20 days in all.
			switch x := r.IntN(10); {
			case x < 6:
				at = at.Add(time.Duration(r.IntN(20_000)) * time.Millisecond)
			case x < 9:
				at = at.Add(time.Duration(r.IntN(40)) * time.Minute)
			default:
				at = at.Add(time.Duration(r.IntN(30)) * time.Hour)
			}
			ev := replay.Event{ID: "ev" + strconv.Itoa(i), Action: []string{"login", "payout"}[r.IntN(2)], At: at,
				UserID: "u" + strconv.Itoa(r.IntN(8)), DeviceID: "d" + strconv.Itoa(r.IntN(6)), IP: "10.0.0." + strconv.Itoa(r.IntN(5))}
			if r.IntN(20) == 0 {
				ev.DeviceID = ""
			}
			if r.IntN(20) == 0 {
				ev.IP = ""
			}
			evs = append(evs, ev)
		}
		rp := replay.New()
		for i, ev := range evs {
			gotV, gotD, err := rp.Observe(ev)
			if err != nil {
				t.Fatal(err)
			}
			wantV, wantD := naive(evs, i)
			if gotV != wantV {
				t.Fatalf("seed %d event %d (%+v): velocity\n got %+v\nwant %+v", seed, i, ev, gotV, wantV)
			}
			// Times are kept to the millisecond.
			if gotD.Known != wantD.Known || gotD.UsersSeen != wantD.UsersSeen || gotD.AgeHours-wantD.AgeHours > 1e-6 || wantD.AgeHours-gotD.AgeHours > 1e-6 {
				t.Fatalf("seed %d event %d (%+v): device\n got %+v\nwant %+v", seed, i, ev, gotD, wantD)
			}
		}
	}
}

// TestApply checks what Apply keeps from the recorded signals and what it replaces, and
// that a mapped IPv4 address counts as the plain one, as on the live path.
func TestApply(t *testing.T) {
	t.Parallel()
	rp := replay.New()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	sig := engine.Signals{
		Velocity:    engine.Velocity{User: engine.Window{Count1m: 99}},
		Device:      engine.DeviceReputation{Known: true, AgeHours: 500, Flagged: true},
		Lists:       map[string]bool{"deny_ip": true},
		Unavailable: []string{"velocity", "verification", "device"},
	}
	if err := rp.Apply(replay.Event{ID: "a", Action: "login", UserID: "u", DeviceID: "d", IP: "::ffff:192.0.2.1", At: at}, &sig); err != nil {
		t.Fatal(err)
	}
	if sig.Velocity.User.Count1m != 1 || sig.Device.Known || !sig.Device.Flagged || !sig.Lists["deny_ip"] {
		t.Errorf("after Apply: %+v", sig)
	}
	if len(sig.Unavailable) != 1 || sig.Unavailable[0] != "verification" {
		t.Errorf("unavailable = %v, want [verification]", sig.Unavailable)
	}
	// Sources not gathered: velocity and device are recomputed, device.flagged from the
	// recorded lists; without lists, device stays not gathered (flagged is unknown).
	sig = engine.Signals{Lists: map[string]bool{"watch_device": true}, NotGathered: []string{"velocity", "device", "verification"}}
	if err := rp.Apply(replay.Event{ID: "c", Action: "login", UserID: "u", DeviceID: "d", At: at}, &sig); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sig.NotGathered, []string{"verification"}) || !sig.Device.Flagged || sig.Velocity.User.Count1m == 0 {
		t.Errorf("after Apply: %+v", sig)
	}
	sig = engine.Signals{NotGathered: []string{"velocity", "device", "lists"}}
	if err := rp.Apply(replay.Event{ID: "d", Action: "login", UserID: "u", DeviceID: "d", At: at}, &sig); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sig.NotGathered, []string{"device", "lists"}) {
		t.Errorf("not gathered = %v, want [device lists]", sig.NotGathered)
	}
	v, _, err := rp.Observe(replay.Event{ID: "b", Action: "login", UserID: "u2", IP: "192.0.2.1", At: at.Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if v.IP.Count1m != 2 || v.IP.DistinctUsers24h != 2 {
		t.Errorf("IP window = %+v, want 2 events of 2 users", v.IP)
	}
	if _, _, err := rp.Observe(replay.Event{Action: "login", At: at}); err == nil {
		t.Error("event without id: no error")
	}
}

func BenchmarkObserve(b *testing.B) {
	rp := replay.New()
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	evs := make([]replay.Event, 1<<16)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range evs {
		evs[i] = replay.Event{Action: "login", UserID: "u" + strconv.Itoa(r.IntN(50000)), DeviceID: "d" + strconv.Itoa(r.IntN(60000)), IP: "10.1." + strconv.Itoa(r.IntN(200)) + "." + strconv.Itoa(r.IntN(200))}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ev := evs[i&(len(evs)-1)]
		ev.ID = strconv.Itoa(i)
		ev.At = at.Add(time.Duration(i) * 10 * time.Millisecond)
		if _, _, err := rp.Observe(ev); err != nil {
			b.Fatal(err)
		}
	}
}
