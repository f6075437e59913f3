// Package throttle lets the first event of each kind through at once and then at most one
// per interval, counting the ones held back in between, so that a failure repeated on
// every request (a log line, an audit event) is reported as one with a count.
package throttle

import (
	"sync"
	"time"
)

// Throttle is safe for concurrent use. Kinds should be few and fixed (a source name, a
// route, a provider and reason): each is remembered for the process's life.
type Throttle[K comparable] struct {
	every time.Duration

	mu    sync.Mutex
	kinds map[K]*state
}

type state struct {
	last time.Time // when one of the kind was last let through
	held int64     // held back since
}

// New returns a Throttle letting one event of a kind through per every; with every <= 0 it
// lets every event through.
func New[K comparable](every time.Duration) *Throttle[K] {
	return &Throttle[K]{every: every, kinds: map[K]*state{}}
}

// Allow reports whether an event of kind at now goes through and, if it does, how many of
// the kind were held back since the last one that did.
func (t *Throttle[K]) Allow(kind K, now time.Time) (bool, int64) {
	if t.every <= 0 {
		return true, 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.kinds[kind]
	if !ok {
		t.kinds[kind] = &state{last: now}
		return true, 0
	}
	if now.Sub(s.last) < t.every {
		s.held++
		return false, 0
	}
	n := s.held
	s.last, s.held = now, 0
	return true, n
}

// Hold counts n more events of kind as held back, for events that were let through but
// could not be reported: the next one let through, an interval after the last, counts
// them.
func (t *Throttle[K]) Hold(kind K, n int64) {
	if t.every <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if s, ok := t.kinds[kind]; ok {
		s.held += n
	}
}
