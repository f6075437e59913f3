//go:build !linux

package load

import "time"

// pacer sleeps until absolute times. Off Linux it uses time.Sleep, which can be up to a
// millisecond late; the dispatch lag in Result shows how late.
type pacer struct{}

func startPacer() *pacer { return &pacer{} }

func (*pacer) stop() {}

func (*pacer) sleepUntil(t time.Time) {
	if d := time.Until(t); d > 0 {
		time.Sleep(d)
	}
}
