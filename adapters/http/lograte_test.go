package http

import (
	"testing"
	"time"
)

func TestLogLimiter(t *testing.T) {
	l := newLogLimiter(10 * time.Second)
	t0 := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	type step struct {
		kind    string
		at      time.Duration
		ok      bool
		dropped int64
	}
	for i, s := range []step{
		{"source velocity", 0, true, 0},
		{"source velocity", time.Second, false, 0},
		{"source lists", time.Second, true, 0}, // kinds are limited separately
		{"source velocity", 2 * time.Second, false, 0},
		{"source velocity", 9 * time.Second, false, 0},
		{"source velocity", 10 * time.Second, true, 3}, // the three left out since 0 s
		{"source velocity", 11 * time.Second, false, 0},
		{"source velocity", time.Minute, true, 1},
		{"source lists", time.Minute, true, 0},
	} {
		ok, dropped := l.allow(s.kind, t0.Add(s.at))
		if ok != s.ok || dropped != s.dropped {
			t.Errorf("step %d (%s at %v) = %v, %d; want %v, %d", i, s.kind, s.at, ok, dropped, s.ok, s.dropped)
		}
	}
}
