package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeWriter is a DecisionWriter whose behaviour each test supplies; it records every batch
// it was called with.
type fakeWriter struct {
	mu      sync.Mutex
	batches [][]string // record ids per call
	write   func(ctx context.Context, recs []DecisionRecord) ([]error, error)
}

func (f *fakeWriter) WriteDecisions(ctx context.Context, recs []DecisionRecord) ([]error, error) {
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.ID
	}
	f.mu.Lock()
	f.batches = append(f.batches, ids)
	f.mu.Unlock()
	if f.write != nil {
		return f.write(ctx, recs)
	}
	return make([]error, len(recs)), nil
}

func (f *fakeWriter) calls() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.batches)
}

func (f *fakeWriter) written() []string {
	var all []string
	for _, b := range f.calls() {
		all = append(all, b...)
	}
	return all
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newCommitter(t *testing.T, w DecisionWriter, opts ...Option) *GroupCommitter {
	t.Helper()
	g := NewGroupCommitter(w, append([]Option{WithLogger(quietLogger())}, opts...)...)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := g.Close(ctx); err != nil {
			t.Errorf("close committer: %v", err)
		}
	})
	return g
}

func rec(id string) DecisionRecord { return DecisionRecord{ID: id} }

// gate blocks the writer's first call until released, so tests can queue records behind it.
type gate struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newGate() *gate { return &gate{entered: make(chan struct{}), release: make(chan struct{})} }

func (g *gate) wait(ctx context.Context) error {
	first := false
	g.once.Do(func() { first = true; close(g.entered) })
	if !first {
		return nil
	}
	select {
	case <-g.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commitAsync runs Commit in a goroutine and returns the channel its result arrives on.
func commitAsync(ctx context.Context, g *GroupCommitter, r DecisionRecord) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- g.Commit(ctx, r) }()
	return ch
}

// waitQueued waits until n records sit in the committer's queue.
func waitQueued(t *testing.T, g *GroupCommitter, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(g.queue) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d records queued, want %d", len(g.queue), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestGroupCommitterBatchesWhileWriterBusy(t *testing.T) {
	gt := newGate()
	w := &fakeWriter{write: func(ctx context.Context, recs []DecisionRecord) ([]error, error) {
		if err := gt.wait(ctx); err != nil {
			return nil, err
		}
		return make([]error, len(recs)), nil
	}}
	g := newCommitter(t, w, WithMaxBatch(4))
	ctx := context.Background()

	first := commitAsync(ctx, g, rec("r0"))
	<-gt.entered
	var rest []<-chan error
	for i := 1; i <= 9; i++ {
		rest = append(rest, commitAsync(ctx, g, rec(fmt.Sprintf("r%d", i))))
	}
	waitQueued(t, g, 4) // the queue holds MaxBatch records; the others wait to enter it
	close(gt.release)
	for i, ch := range append([]<-chan error{first}, rest...) {
		if err := <-ch; err != nil {
			t.Errorf("commit r%d: %v", i, err)
		}
	}
	calls := w.calls()
	if len(calls[0]) != 1 {
		t.Errorf("first batch = %v, want the lone first record", calls[0])
	}
	for _, b := range calls[1:] {
		if len(b) > 4 {
			t.Errorf("batch of %d exceeds MaxBatch 4", len(b))
		}
	}
	if len(calls) > 4 {
		t.Errorf("%d batches for 10 records with MaxBatch 4, want at most 4: %v", len(calls), calls)
	}
	if got := w.written(); len(got) != 10 {
		t.Errorf("written %v, want 10 records once each", got)
	}
}

func TestGroupCommitterPerRecordAndBatchErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("duplicate reaches its own caller", func(t *testing.T) {
		w := &fakeWriter{write: func(_ context.Context, recs []DecisionRecord) ([]error, error) {
			res := make([]error, len(recs))
			for i, r := range recs {
				if r.ID == "dup" {
					res[i] = ErrDuplicateIdempotencyKey
				}
			}
			return res, nil
		}}
		g := newCommitter(t, w)
		if err := g.Commit(ctx, rec("dup")); !errors.Is(err, ErrDuplicateIdempotencyKey) {
			t.Errorf("Commit(dup) = %v, want ErrDuplicateIdempotencyKey", err)
		}
		if err := g.Commit(ctx, rec("ok")); err != nil {
			t.Errorf("Commit(ok) = %v", err)
		}
	})

	t.Run("unavailable fails the batch without retries", func(t *testing.T) {
		gt := newGate()
		w := &fakeWriter{write: func(ctx context.Context, recs []DecisionRecord) ([]error, error) {
			if err := gt.wait(ctx); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("write decisions: %w: connection refused", ErrUnavailable)
		}}
		g := newCommitter(t, w)
		first := commitAsync(ctx, g, rec("a"))
		<-gt.entered
		chs := []<-chan error{first, commitAsync(ctx, g, rec("b")), commitAsync(ctx, g, rec("c"))}
		waitQueued(t, g, 2)
		close(gt.release)
		for _, ch := range chs {
			if err := <-ch; !errors.Is(err, ErrUnavailable) {
				t.Errorf("Commit = %v, want ErrUnavailable", err)
			}
		}
		if calls := w.calls(); len(calls) != 2 {
			t.Errorf("calls = %v, want 2 (no one-by-one retry for an outage)", calls)
		}
	})

	t.Run("a refused record fails alone", func(t *testing.T) {
		gt := newGate()
		w := &fakeWriter{write: func(ctx context.Context, recs []DecisionRecord) ([]error, error) {
			if err := gt.wait(ctx); err != nil {
				return nil, err
			}
			for _, r := range recs {
				if r.ID == "poison" {
					return nil, errors.New("value too long")
				}
			}
			return make([]error, len(recs)), nil
		}}
		g := newCommitter(t, w)
		first := commitAsync(ctx, g, rec("first"))
		<-gt.entered
		good1 := commitAsync(ctx, g, rec("good1"))
		waitQueued(t, g, 1)
		bad := commitAsync(ctx, g, rec("poison"))
		waitQueued(t, g, 2)
		good2 := commitAsync(ctx, g, rec("good2"))
		waitQueued(t, g, 3)
		close(gt.release)
		for name, ch := range map[string]<-chan error{"first": first, "good1": good1, "good2": good2} {
			if err := <-ch; err != nil {
				t.Errorf("Commit(%s) = %v", name, err)
			}
		}
		if err := <-bad; err == nil {
			t.Errorf("Commit(poison) = nil, want an error")
		}
	})

	t.Run("wrong result count is an error", func(t *testing.T) {
		w := &fakeWriter{write: func(context.Context, []DecisionRecord) ([]error, error) { return nil, nil }}
		g := newCommitter(t, w)
		if err := g.Commit(ctx, rec("a")); err == nil {
			t.Errorf("Commit = nil, want an error for a writer returning no results")
		}
	})
}

func TestGroupCommitterContext(t *testing.T) {
	t.Run("cancelled while queued: withdrawn, never written", func(t *testing.T) {
		gt := newGate()
		w := &fakeWriter{write: func(ctx context.Context, recs []DecisionRecord) ([]error, error) {
			if err := gt.wait(ctx); err != nil {
				return nil, err
			}
			return make([]error, len(recs)), nil
		}}
		g := newCommitter(t, w)
		first := commitAsync(context.Background(), g, rec("first"))
		<-gt.entered
		ctx, cancel := context.WithCancel(context.Background())
		queued := commitAsync(ctx, g, rec("withdrawn"))
		waitQueued(t, g, 1)
		cancel()
		if err := <-queued; !errors.Is(err, context.Canceled) {
			t.Errorf("Commit = %v, want context.Canceled", err)
		}
		close(gt.release)
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		if err := g.Commit(context.Background(), rec("after")); err != nil {
			t.Fatal(err)
		}
		if got := w.written(); slices.Contains(got, "withdrawn") {
			t.Errorf("written %v: the withdrawn record was written", got)
		}
	})

	t.Run("cancelled while in flight: waits for the outcome", func(t *testing.T) {
		gt := newGate()
		w := &fakeWriter{write: func(ctx context.Context, recs []DecisionRecord) ([]error, error) {
			if err := gt.wait(ctx); err != nil {
				return nil, err
			}
			return make([]error, len(recs)), nil
		}}
		g := newCommitter(t, w)
		ctx, cancel := context.WithCancel(context.Background())
		inflight := commitAsync(ctx, g, rec("inflight"))
		<-gt.entered
		cancel()
		select {
		case err := <-inflight:
			t.Fatalf("Commit returned %v while its transaction was still in flight", err)
		case <-time.After(20 * time.Millisecond):
		}
		close(gt.release)
		if err := <-inflight; err != nil {
			t.Errorf("Commit = %v, want nil: the record was committed", err)
		}
	})

	t.Run("batch deadline follows the callers", func(t *testing.T) {
		var got time.Time
		w := &fakeWriter{write: func(ctx context.Context, recs []DecisionRecord) ([]error, error) {
			got, _ = ctx.Deadline()
			return make([]error, len(recs)), nil
		}}
		g := newCommitter(t, w, WithWriteTimeout(time.Minute))
		deadline := time.Now().Add(2 * time.Second)
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		if err := g.Commit(ctx, rec("a")); err != nil {
			t.Fatal(err)
		}
		if !got.Equal(deadline) {
			t.Errorf("batch deadline = %v, want the caller's %v", got, deadline)
		}
		if err := g.Commit(context.Background(), rec("b")); err != nil {
			t.Fatal(err)
		}
		if d := time.Until(got); d < 50*time.Second {
			t.Errorf("batch deadline without caller deadline is %v away, want the write timeout", d)
		}
	})
}

func TestGroupCommitterMaxWait(t *testing.T) {
	w := &fakeWriter{}
	g := newCommitter(t, w, WithMaxWait(200*time.Millisecond))
	ctx := context.Background()
	a := commitAsync(ctx, g, rec("a"))
	time.Sleep(10 * time.Millisecond)
	b := commitAsync(ctx, g, rec("b"))
	if err := errors.Join(<-a, <-b); err != nil {
		t.Fatal(err)
	}
	if calls := w.calls(); len(calls) != 1 || len(calls[0]) != 2 {
		t.Errorf("batches = %v, want one batch of both records", calls)
	}
}

func TestGroupCommitterClose(t *testing.T) {
	t.Run("flushes queued records, then refuses", func(t *testing.T) {
		gt := newGate()
		w := &fakeWriter{write: func(ctx context.Context, recs []DecisionRecord) ([]error, error) {
			if err := gt.wait(ctx); err != nil {
				return nil, err
			}
			return make([]error, len(recs)), nil
		}}
		g := NewGroupCommitter(w, WithLogger(quietLogger()))
		ctx := context.Background()
		chs := []<-chan error{commitAsync(ctx, g, rec("a"))}
		<-gt.entered
		chs = append(chs, commitAsync(ctx, g, rec("b")), commitAsync(ctx, g, rec("c")))
		waitQueued(t, g, 2)
		closed := make(chan error, 1)
		go func() { closed <- g.Close(ctx) }()
		close(gt.release)
		if err := <-closed; err != nil {
			t.Fatalf("Close = %v", err)
		}
		for _, ch := range chs {
			if err := <-ch; err != nil {
				t.Errorf("Commit = %v", err)
			}
		}
		if err := g.Commit(ctx, rec("late")); !errors.Is(err, ErrClosed) {
			t.Errorf("Commit after Close = %v, want ErrClosed", err)
		}
		if err := g.Close(ctx); err != nil {
			t.Errorf("second Close = %v", err)
		}
	})

	t.Run("deadline aborts a stuck write", func(t *testing.T) {
		w := &fakeWriter{write: func(ctx context.Context, _ []DecisionRecord) ([]error, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}}
		g := NewGroupCommitter(w, WithLogger(quietLogger()))
		stuck := commitAsync(context.Background(), g, rec("stuck"))
		for len(w.calls()) == 0 {
			time.Sleep(time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if err := g.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close = %v, want context.DeadlineExceeded", err)
		}
		if err := <-stuck; err == nil {
			t.Errorf("Commit of an aborted write = nil, want an error")
		}
	})
}

func TestGroupCommitterConcurrent(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	w := &fakeWriter{write: func(_ context.Context, recs []DecisionRecord) ([]error, error) {
		time.Sleep(100 * time.Microsecond)
		mu.Lock()
		defer mu.Unlock()
		for _, r := range recs {
			seen[r.ID]++
		}
		return make([]error, len(recs)), nil
	}}
	g := newCommitter(t, w, WithMaxBatch(32))
	var wg sync.WaitGroup
	for i := range 500 {
		wg.Go(func() {
			if err := g.Commit(context.Background(), rec(fmt.Sprint(i))); err != nil {
				t.Errorf("Commit %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 500 {
		t.Errorf("%d distinct records written, want 500", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("record %s written %d times", id, n)
		}
	}
	if calls := len(w.calls()); calls >= 500 {
		t.Errorf("%d transactions for 500 concurrent records: no batching", calls)
	}
}

func TestGroupCommitterObserver(t *testing.T) {
	type obs struct {
		records int
		took    time.Duration
		err     error
	}
	var mu sync.Mutex
	var seen []obs
	w := &fakeWriter{write: func(_ context.Context, recs []DecisionRecord) ([]error, error) {
		if recs[0].ID == "down" {
			return nil, fmt.Errorf("write decisions: %w", ErrUnavailable)
		}
		time.Sleep(5 * time.Millisecond)
		return make([]error, len(recs)), nil
	}}
	g := newCommitter(t, w, WithObserver(func(n int, d time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, obs{n, d, err})
	}))
	ctx := context.Background()
	if err := g.Commit(ctx, rec("a")); err != nil {
		t.Fatal(err)
	}
	if err := g.Commit(ctx, rec("down")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Commit(down) = %v, want ErrUnavailable", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 {
		t.Fatalf("observed %d batches, want 2: %+v", len(seen), seen)
	}
	if seen[0].records != 1 || seen[0].took < 5*time.Millisecond || seen[0].err != nil {
		t.Errorf("first batch observed as %+v, want 1 record, ≥ 5 ms, no error", seen[0])
	}
	if seen[1].records != 1 || !errors.Is(seen[1].err, ErrUnavailable) {
		t.Errorf("second batch observed as %+v, want 1 record and ErrUnavailable", seen[1])
	}
}

// lines returns the messages a JSON handler wrote to buf, one per line.
func lines(t *testing.T, buf *syncBuffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// syncBuffer is a bytes.Buffer safe for the committer's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestGroupCommitterLogsAnOutageNotEveryBatch checks that while the store is down the
// committer logs the first failed batch, not each one, and one line when batches commit
// again, with how many failed.
func TestGroupCommitterLogsAnOutageNotEveryBatch(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	w := &fakeWriter{write: func(ctx context.Context, recs []DecisionRecord) ([]error, error) {
		if down.Load() {
			return nil, fmt.Errorf("connect: %w", ErrUnavailable)
		}
		return make([]error, len(recs)), nil
	}}
	var buf syncBuffer
	g := newCommitter(t, w, WithLogger(slog.New(slog.NewJSONHandler(&buf, nil))))
	const n = 200
	for i := range n {
		if err := g.Commit(t.Context(), rec(fmt.Sprint("r", i))); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("commit %d while down = %v, want ErrUnavailable", i, err)
		}
	}
	down.Store(false)
	for i := range 3 {
		if err := g.Commit(t.Context(), rec(fmt.Sprint("ok", i))); err != nil {
			t.Fatalf("commit after recovery = %v", err)
		}
	}
	got := lines(t, &buf)
	if len(got) != 2 {
		t.Fatalf("logged %d lines for %d failed batches and a recovery, want 2:\n%s", len(got), n, buf.String())
	}
	if got[0]["msg"] != "decision batch failed" || got[0]["level"] != "ERROR" {
		t.Errorf("first line = %v", got[0])
	}
	if got[1]["msg"] != "decision batches commit again" || got[1]["failed_batches"] != float64(n) {
		t.Errorf("recovery line = %v, want failed_batches %d", got[1], n)
	}
}

// TestFailureLogInterval checks the lines of a long outage: the first failure, then one
// line per interval counting the batches and records since the previous line.
func TestFailureLogInterval(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	var f failureLog
	t0 := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	boom := errors.New("boom")
	for i := range 25 { // one failed batch of 2 records a second for 25 s
		f.failed(log, 2, boom, t0.Add(time.Duration(i)*time.Second))
	}
	f.committed(log)
	f.committed(log) // no second recovery line
	f.failed(log, 1, boom, t0.Add(time.Minute))
	got := lines(t, &buf)
	want := []struct {
		msg              string
		batches, records float64
	}{
		{"decision batch failed", 0, 2},
		{"decision batches still failing", 10, 20}, // at 10 s: the failures at 1..10 s
		{"decision batches still failing", 10, 20}, // at 20 s
		{"decision batches commit again", 0, 0},
		{"decision batch failed", 0, 1}, // a new outage starts over
	}
	if len(got) != len(want) {
		t.Fatalf("logged %d lines, want %d:\n%s", len(got), len(want), buf.String())
	}
	for i, w := range want {
		g := got[i]
		if g["msg"] != w.msg {
			t.Errorf("line %d = %v, want %q", i, g, w.msg)
		}
		if w.msg == "decision batches still failing" && (g["batches"] != w.batches || g["records"] != w.records) {
			t.Errorf("line %d = %v, want batches %v records %v", i, g, w.batches, w.records)
		}
		if w.msg == "decision batch failed" && g["records"] != w.records {
			t.Errorf("line %d = %v, want records %v", i, g, w.records)
		}
	}
	if got[3]["failed_batches"] != float64(25) {
		t.Errorf("recovery line = %v, want failed_batches 25", got[3])
	}
}

// TestRefusedLogInterval checks that batches refused as a whole are logged once per
// interval, each line counting the ones not logged since the previous.
func TestRefusedLogInterval(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	var r refusedLog
	t0 := time.Date(2026, 12, 7, 7, 0, 0, 0, time.UTC)
	boom := errors.New("subject key does not unwrap")
	for i := range 50 { // two refused batches a second for 25 s
		r.refused(log, 3, boom, t0.Add(time.Duration(i)*500*time.Millisecond))
	}
	got := lines(t, &buf)
	want := []float64{0, 19, 19} // at 0, 10 and 20 s
	if len(got) != len(want) {
		t.Fatalf("logged %d lines, want %d:\n%s", len(got), len(want), buf.String())
	}
	for i, l := range got {
		if l["msg"] != "decision batch refused; retrying its records one by one" || l["suppressed"] != want[i] || l["records"] != float64(3) {
			t.Errorf("line %d = %v, want suppressed %v", i, l, want[i])
		}
	}
}
