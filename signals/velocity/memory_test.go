package velocity_test

import (
	"context"
	"testing"
	"time"

	"github.com/verdict-engine/verdict/signals"
	"github.com/verdict-engine/verdict/signals/velocity"
	"github.com/verdict-engine/verdict/signals/velocitytest"
)

func TestMemory(t *testing.T) {
	t.Parallel()
	velocitytest.Run(t, func(t *testing.T) signals.Velocity { return velocity.NewMemory() })
}

// TestDeviceForgottenAfterAMonthIdle: a device not seen for over 30 days is new again, as
// in Redis, where its keys expire; it used to depend on whether eviction had reached it,
// which other devices' traffic decided.
func TestDeviceForgottenAfterAMonthIdle(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	now := t0
	m := velocity.NewMemory(velocity.WithClock(func() time.Time { return now }))
	ctx := context.Background()
	observe := func(id, user string) signals.Observation {
		t.Helper()
		obs, err := m.Observe(ctx, signals.Event{ID: id, Action: "login", UserID: user, DeviceID: "dev-x", At: now})
		if err != nil {
			t.Fatal(err)
		}
		return obs
	}
	observe("e1", "u1")
	now = t0.Add(29 * 24 * time.Hour)
	if obs := observe("e2", "u2"); !obs.DeviceKnown || obs.DeviceUsers30d != 2 {
		t.Fatalf("after 29 days: known %v, users %d; want known, 2 users", obs.DeviceKnown, obs.DeviceUsers30d)
	}
	now = now.Add(31 * 24 * time.Hour)
	if obs := observe("e3", "u3"); obs.DeviceKnown || obs.DeviceUsers30d != 1 || !obs.DeviceFirstSeen.Equal(now) {
		t.Fatalf("after 31 idle days: known %v, users %d, first seen %v; want a new device", obs.DeviceKnown, obs.DeviceUsers30d, obs.DeviceFirstSeen)
	}
}
