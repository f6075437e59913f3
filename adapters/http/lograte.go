package http

import (
	"sync"
	"time"
)

// failureLogInterval is how often a failure that repeats on every request is logged.
const failureLogInterval = 10 * time.Second

// logLimiter keeps failures that repeat on every request (a signal source down, the
// store unreachable, a policy that errors) from writing one log line per decision: at
// 3,000 decisions/s an outage would otherwise write 3,000 lines a second, costing CPU
// when the service is already degraded and burying everything else in the log. The
// first occurrence of a kind is logged at once, later ones at most once per interval,
// with how many were left out meanwhile. The metrics count every occurrence
// (verdict_signal_source_errors_total, verdict_degraded_decisions_total).
//
// Kinds are few and fixed by the deployment (a source name, an action of the loaded
// policy set, a route pattern and status), so the map does not grow with traffic.
type logLimiter struct {
	every time.Duration

	mu    sync.Mutex
	kinds map[string]*logKind
}

type logKind struct {
	last       time.Time
	suppressed int64
}

func newLogLimiter(every time.Duration) *logLimiter {
	return &logLimiter{every: every, kinds: map[string]*logKind{}}
}

// allow reports whether an occurrence of kind at now is to be logged and, if it is, how
// many occurrences of kind were left out since the last one logged.
func (l *logLimiter) allow(kind string, now time.Time) (bool, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k, ok := l.kinds[kind]
	if !ok {
		l.kinds[kind] = &logKind{last: now}
		return true, 0
	}
	if now.Sub(k.last) < l.every {
		k.suppressed++
		return false, 0
	}
	n := k.suppressed
	k.last, k.suppressed = now, 0
	return true, n
}
