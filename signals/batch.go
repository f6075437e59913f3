package signals

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/verdict-engine/verdict/store"
)

// VerificationBatchSource reads many users' latest verifications in one query
// (store.Verifications).
type VerificationBatchSource interface {
	LatestVerifications(ctx context.Context, userIDs []string) (map[string]store.Verification, error)
}

// maxVerificationBatch bounds the users of one batched read; more wait for the next.
const maxVerificationBatch = 256

// VerificationBatcher is a VerificationSource that reads concurrent lookups together, as
// the group committer writes decisions: the first lookup starts a read at once, lookups
// that arrive while a read is in flight wait and go in the next one, a single query for
// all of them. Every decision reads its subject's latest verification, so against a
// database across the network this turns one query per decision into one per batch,
// which saves the database and Verdict the per-query cost that dominated the lookup.
//
// A lookup always goes in a read that starts after it arrived, so it sees every
// verification committed before it: batching changes what is read together, never how
// fresh it is.
type VerificationBatcher struct {
	src     VerificationBatchSource
	timeout time.Duration

	mu      sync.Mutex
	reading bool         // a read is in flight
	next    []*batchRead // the reads waiting for it, each up to maxVerificationBatch users
}

// batchRead is one query and the lookups waiting for it.
type batchRead struct {
	users []string
	done  chan struct{} // closed when res and err are set
	res   map[string]store.Verification
	err   error
}

// NewVerificationBatcher batches lookups to src. Each read is bounded by timeout (a lookup
// whose own context ends first stops waiting; the read goes on for the others).
func NewVerificationBatcher(src VerificationBatchSource, timeout time.Duration) *VerificationBatcher {
	return &VerificationBatcher{src: src, timeout: timeout}
}

// LatestVerification implements VerificationSource: the user's latest verification, or an
// error wrapping store.ErrNotFound when there is none.
func (b *VerificationBatcher) LatestVerification(ctx context.Context, userID string) (store.Verification, error) {
	b.mu.Lock()
	var r *batchRead
	start := !b.reading
	if start {
		b.reading = true
		r = &batchRead{users: []string{userID}, done: make(chan struct{})}
	} else {
		if n := len(b.next); n == 0 || len(b.next[n-1].users) >= maxVerificationBatch {
			b.next = append(b.next, &batchRead{done: make(chan struct{})})
		}
		r = b.next[len(b.next)-1]
		r.users = append(r.users, userID)
	}
	b.mu.Unlock()
	if start {
		go b.run(r)
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		return store.Verification{}, fmt.Errorf("latest verification: %w", ctx.Err())
	}
	if r.err != nil {
		return store.Verification{}, r.err
	}
	v, ok := r.res[userID]
	if !ok {
		return store.Verification{}, fmt.Errorf("latest verification: %w", store.ErrNotFound)
	}
	return v, nil
}

// run reads r, then whatever queued meanwhile, until nothing waits.
func (b *VerificationBatcher) run(r *batchRead) {
	for r != nil {
		ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
		r.res, r.err = b.src.LatestVerifications(ctx, r.users)
		cancel()
		close(r.done)

		b.mu.Lock()
		r = nil
		if len(b.next) > 0 {
			r, b.next = b.next[0], b.next[1:]
		} else {
			b.reading = false
		}
		b.mu.Unlock()
	}
}
