package signals

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/verdict-engine/verdict/store"
)

// gatedSource answers LatestVerifications from its current statuses, each read waiting
// for a token on release when release is set.
type gatedSource struct {
	mu       sync.Mutex
	status   map[string]string
	reads    [][]string
	entered  chan struct{}
	release  chan struct{}
	failWith error
}

func (g *gatedSource) LatestVerifications(ctx context.Context, users []string) (map[string]store.Verification, error) {
	g.mu.Lock()
	g.reads = append(g.reads, append([]string(nil), users...))
	snapshot := map[string]store.Verification{}
	for _, u := range users {
		if s, ok := g.status[u]; ok {
			snapshot[u] = store.Verification{UserID: u, Status: s}
		}
	}
	err := g.failWith
	g.mu.Unlock()
	if g.entered != nil {
		g.entered <- struct{}{}
	}
	if g.release != nil {
		select {
		case <-g.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	return snapshot, nil
}

func (g *gatedSource) set(user, status string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.status[user] = status
}

func (g *gatedSource) readSizes() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]int, len(g.reads))
	for i, r := range g.reads {
		out[i] = len(r)
	}
	return out
}

// waitQueued waits until n lookups wait for the next read.
func waitQueued(t *testing.T, b *VerificationBatcher, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b.mu.Lock()
		queued := 0
		for _, r := range b.next {
			queued += len(r.users)
		}
		b.mu.Unlock()
		if queued >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d lookups queued, want %d", queued, n)
		}
		time.Sleep(time.Millisecond)
	}
}

type lookup struct {
	v   store.Verification
	err error
}

func lookupAsync(b *VerificationBatcher, ctx context.Context, user string) <-chan lookup {
	ch := make(chan lookup, 1)
	go func() {
		v, err := b.LatestVerification(ctx, user)
		ch <- lookup{v, err}
	}()
	return ch
}

func TestVerificationBatcherReadsWaitingLookupsTogether(t *testing.T) {
	src := &gatedSource{status: map[string]string{"u1": "approved"}, entered: make(chan struct{}, 100), release: make(chan struct{})}
	b := NewVerificationBatcher(src, time.Second)
	ctx := context.Background()

	first := lookupAsync(b, ctx, "u1")
	<-src.entered // the first read is in flight, holding the old status of u1
	src.set("u1", "rejected")
	var waiting []<-chan lookup
	for i := range 20 {
		waiting = append(waiting, lookupAsync(b, ctx, fmt.Sprintf("u%d", i%10)))
	}
	waitQueued(t, b, 20)
	close(src.release)

	if r := <-first; r.err != nil || r.v.Status != "approved" {
		t.Errorf("first lookup = %+v, %v; want approved (read before the change)", r.v, r.err)
	}
	for i, ch := range waiting {
		r := <-ch
		switch {
		case i%10 == 1:
			// Queued after the change: the next read sees it.
			if r.err != nil || r.v.Status != "rejected" {
				t.Errorf("lookup of u1 queued after the change = %+v, %v; want rejected", r.v, r.err)
			}
		case !errors.Is(r.err, store.ErrNotFound):
			t.Errorf("lookup of u%d = %+v, %v; want ErrNotFound", i%10, r.v, r.err)
		}
	}
	if got := src.readSizes(); len(got) != 2 || got[0] != 1 || got[1] != 20 {
		t.Errorf("reads of %v users, want [1 20]: the 20 waiting lookups in one read", got)
	}

	// Idle again: the next lookup reads at once, alone.
	if v, err := b.LatestVerification(ctx, "u1"); err != nil || v.Status != "rejected" {
		t.Errorf("lookup when idle = %+v, %v", v, err)
	}
	if got := src.readSizes(); len(got) != 3 || got[2] != 1 {
		t.Errorf("reads of %v users, want a third read of 1", got)
	}
}

func TestVerificationBatcherErrorsAndCancellation(t *testing.T) {
	src := &gatedSource{status: map[string]string{}, entered: make(chan struct{}, 100), release: make(chan struct{})}
	b := NewVerificationBatcher(src, time.Second)

	// A lookup whose context ends stops waiting; the read goes on for the others.
	ctx, cancel := context.WithCancel(context.Background())
	gone := lookupAsync(b, ctx, "a")
	<-src.entered
	stays := lookupAsync(b, context.Background(), "b")
	waitQueued(t, b, 1)
	cancel()
	if r := <-gone; !errors.Is(r.err, context.Canceled) {
		t.Errorf("cancelled lookup = %v, want context.Canceled", r.err)
	}
	src.mu.Lock()
	src.failWith = fmt.Errorf("latest verifications: %w", store.ErrUnavailable)
	src.mu.Unlock()
	close(src.release)
	// The read "b" was queued for fails, and says so to its lookup.
	if r := <-stays; !errors.Is(r.err, store.ErrUnavailable) {
		t.Errorf("lookup in a failed read = %v, want ErrUnavailable", r.err)
	}
}

func TestVerificationBatcherSplitsLargeBatches(t *testing.T) {
	src := &gatedSource{status: map[string]string{}, entered: make(chan struct{}, 100), release: make(chan struct{}, 100)}
	b := NewVerificationBatcher(src, time.Second)
	ctx := context.Background()
	first := lookupAsync(b, ctx, "first")
	<-src.entered
	n := maxVerificationBatch + 10
	var waiting []<-chan lookup
	for i := range n {
		waiting = append(waiting, lookupAsync(b, ctx, fmt.Sprintf("user-%d", i)))
	}
	waitQueued(t, b, n)
	for range 3 {
		src.release <- struct{}{}
	}
	<-first
	for _, ch := range waiting {
		if r := <-ch; !errors.Is(r.err, store.ErrNotFound) {
			t.Fatalf("lookup = %v, want ErrNotFound", r.err)
		}
	}
	if got := src.readSizes(); len(got) != 3 || got[1] != maxVerificationBatch || got[2] != 10 {
		t.Errorf("reads of %v users, want [1 %d 10]", got, maxVerificationBatch)
	}
}
