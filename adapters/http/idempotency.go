package http

import (
	"context"
	"sync"
)

// idempotencyFlights lets one request per Idempotency-Key at a time run a decision in this
// process. A client that retries before its first attempt has answered (a timeout on its
// side, a double submit) sends the same key concurrently; every copy used to gather
// signals, and so to record a velocity event, before the store's unique key made all but
// one answer as the winner did: 40 concurrent retries of one payout left the user's next
// decision counting 7 payouts in the minute instead of 2. Now the copies wait for the
// first and then answer from the store; only the first records an event. Replicas that
// share a Postgres store still race each other, rarely: a load balancer sends a client's
// retries to any replica.
type idempotencyFlights struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

// begin claims key. It returns (end, nil) when the caller holds the key and must call end
// when its decision is stored or has failed, or (nil, wait) when another request holds it:
// wait is closed when that request ends, and the caller should look the key up again.
func (f *idempotencyFlights) begin(key string) (end func(), wait <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ch, ok := f.m[key]; ok {
		return nil, ch
	}
	if f.m == nil {
		f.m = make(map[string]chan struct{})
	}
	ch := make(chan struct{})
	f.m[key] = ch
	return func() {
		f.mu.Lock()
		delete(f.m, key)
		f.mu.Unlock()
		close(ch)
	}, nil
}

// await waits for a flight to end or ctx to end, reporting which.
func await(ctx context.Context, wait <-chan struct{}) bool {
	select {
	case <-wait:
		return true
	case <-ctx.Done():
		return false
	}
}
