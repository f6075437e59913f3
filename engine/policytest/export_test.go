package policytest

import "time"

// SetMaxTracedDuration sets how long a failing test may have run to be traced, until the
// returned function restores it.
func SetMaxTracedDuration(d time.Duration) (restore func()) {
	old := maxTracedDuration
	maxTracedDuration = d
	return func() { maxTracedDuration = old }
}
