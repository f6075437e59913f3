// Package replay reconstructs point-in-time signals for stored decisions: the velocity
// counts and device reputation each decision would have seen, computed from the history
// before it (and the decision itself, as live), never from anything later.
//
// It reuses velocity.Memory, the embedded counter, with its clock driven by the events'
// own times, so counting, window bounds and expiry are exactly those of a live server on
// the embedded default. Lists and verification are not recomputed: they come from the
// stored input as recorded.
package replay

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/signals"
	"github.com/verdict-engine/verdict/signals/velocity"
)

// Event is one stored decision as the counters see it.
type Event struct {
	ID       string // the decision id: unique per decision
	Action   string
	UserID   string
	DeviceID string
	IP       string // as posted (context.ip); normalized as the live path does
	At       time.Time
}

// Replayer recomputes velocity and device signals over a history fed to it in time
// order. It is not safe for concurrent use: history is sequential by nature. Memory is
// bounded by the last 24 h of events (30 days of device first-seen times and users), as
// for the live in-process counters.
type Replayer struct {
	mem *velocity.Memory
	now time.Time
	// devices holds each device's first and last sighting (Unix ms). velocity.Memory
	// forgets a device idle for 30 days at a moment that depends on its hash seeds; the
	// replay forgets it exactly then, so two replays of one history agree.
	devices map[string]*sighting
	swept   int64 // when idle devices were last dropped
}

type sighting struct{ first, last int64 }

// deviceTTL is how long a device is remembered after its last sighting, as in the
// live counters.
const deviceTTL = 30 * 24 * time.Hour

// New returns a Replayer with no history.
func New() *Replayer {
	r := &Replayer{devices: map[string]*sighting{}}
	r.mem = velocity.NewMemory(velocity.WithClock(func() time.Time { return r.now }))
	return r
}

// Observe records ev and returns the velocity and device signals it sees, including
// itself, as signals.Gatherer would have computed them at ev.At. Events must come in
// non-decreasing time order for the signals to be point in time; an event a little
// earlier than the previous one is still counted by its own time. The returned device
// reputation has Flagged false: it comes from lists, which are kept as recorded.
//
// It returns an error wrapping velocity.ErrInvalidEvent for an event without ID or time.
func (r *Replayer) Observe(ev Event) (engine.Velocity, engine.DeviceReputation, error) {
	if ev.At.After(r.now) {
		r.now = ev.At
	}
	obs, err := r.mem.Observe(context.Background(), signals.Event{
		ID: ev.ID, Action: ev.Action, UserID: ev.UserID, DeviceID: ev.DeviceID, IP: normalizeIP(ev.IP), At: ev.At,
	})
	if err != nil {
		return engine.Velocity{}, engine.DeviceReputation{}, fmt.Errorf("replay %s: %w", ev.ID, err)
	}
	vel := engine.Velocity{User: obs.User, Device: obs.Device, IP: obs.IP}
	var dev engine.DeviceReputation
	if ev.DeviceID != "" {
		dev.UsersSeen = obs.DeviceUsers30d
		at, ttl := ev.At.UnixMilli(), deviceTTL.Milliseconds()
		s := r.devices[ev.DeviceID]
		switch {
		case s == nil:
			r.devices[ev.DeviceID] = &sighting{first: at, last: at}
		case at-s.last >= ttl: // forgotten: new again
			*s = sighting{first: at, last: at}
		default:
			dev.Known = true
			dev.AgeHours = max(0, float64(at-s.first)/float64(time.Hour.Milliseconds()))
			s.last = max(s.last, at)
		}
		// Drop devices idle for the TTL once a day of history: memory stays bounded by
		// the devices of the last 30 days.
		if at-r.swept >= 24*time.Hour.Milliseconds() {
			for id, s := range r.devices {
				if at-s.last >= ttl {
					delete(r.devices, id)
				}
			}
			r.swept = at
		}
	}
	return vel, dev, nil
}

// Apply recomputes sig's velocity and device signals for ev in place: Velocity and
// Device are replaced (Device.Flagged is kept, as it comes from lists), and "velocity"
// and "device" are dropped from Unavailable and NotGathered since they are now known.
// A device not gathered takes Flagged from the recorded lists; when those were not
// gathered either, Flagged is unknown and "device" stays not gathered. Lists,
// verification and the other unavailable sources stay as recorded.
func (r *Replayer) Apply(ev Event, sig *engine.Signals) error {
	vel, dev, err := r.Observe(ev)
	if err != nil {
		return err
	}
	known := func(s string) bool {
		return s == signals.SourceVelocity || s == signals.SourceDevice
	}
	dev.Flagged = sig.Device.Flagged
	if slices.Contains(sig.NotGathered, signals.SourceDevice) {
		if slices.Contains(sig.NotGathered, signals.SourceLists) {
			known = func(s string) bool { return s == signals.SourceVelocity }
		} else {
			dev.Flagged = sig.Lists["deny_device"] || sig.Lists["watch_device"]
		}
	}
	sig.Velocity, sig.Device = vel, dev
	if len(sig.Unavailable) > 0 {
		sig.Unavailable = slices.DeleteFunc(slices.Clone(sig.Unavailable), known)
	}
	if len(sig.NotGathered) > 0 {
		if sig.NotGathered = slices.DeleteFunc(slices.Clone(sig.NotGathered), known); len(sig.NotGathered) == 0 {
			sig.NotGathered = nil
		}
	}
	return nil
}

// normalizeIP returns ip as the live path hands it to the counters (netip, unmapped),
// or ip unchanged when it does not parse.
func normalizeIP(ip string) string {
	if ip == "" {
		return ""
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	return a.Unmap().String()
}
