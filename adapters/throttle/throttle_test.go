package throttle

import (
	"testing"
	"time"
)

func TestThrottle(t *testing.T) {
	th := New[string](10 * time.Second)
	t0 := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	type step struct {
		kind string
		at   time.Duration
		hold int64 // Hold before Allow
		ok   bool
		held int64
	}
	for i, s := range []step{
		{"source velocity", 0, 0, true, 0},
		{"source velocity", time.Second, 0, false, 0},
		{"source lists", time.Second, 0, true, 0}, // kinds are throttled separately
		{"source velocity", 2 * time.Second, 0, false, 0},
		{"source velocity", 9 * time.Second, 0, false, 0},
		{"source velocity", 10 * time.Second, 0, true, 3}, // the three held since 0 s
		{"source velocity", 11 * time.Second, 0, false, 0},
		{"source velocity", time.Minute, 2, true, 3}, // one held, two given back by Hold
		{"source lists", time.Minute, 0, true, 0},
	} {
		if s.hold > 0 {
			th.Hold(s.kind, s.hold)
		}
		ok, held := th.Allow(s.kind, t0.Add(s.at))
		if ok != s.ok || held != s.held {
			t.Errorf("step %d (%s at %v) = %v, %d; want %v, %d", i, s.kind, s.at, ok, held, s.ok, s.held)
		}
	}
}

func TestThrottleOff(t *testing.T) {
	th := New[int](0)
	th.Hold(1, 5)
	for i := range 3 {
		if ok, held := th.Allow(1, time.Time{}); !ok || held != 0 {
			t.Fatalf("event %d with the throttle off = %v, %d; want through, 0", i, ok, held)
		}
	}
}
