package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// GroupCommitter makes decisions durable before they are answered without paying one
// transaction (one fsync) per decision: concurrent Commit calls queue their records, and a
// single background goroutine writes whatever queued up while the previous transaction was
// in flight as one WriteDecisions batch. Under load batches grow by themselves; a lone
// request is written at once.
//
// A record is acknowledged (Commit returns nil) only after the transaction holding it has
// committed. A Commit that returns an error may still have been written only in the one
// ambiguous case every database client has: the connection failed while the commit itself
// was in flight.
type GroupCommitter struct {
	w            DecisionWriter
	maxBatch     int
	maxWait      time.Duration
	writeTimeout time.Duration
	log          *slog.Logger
	observe      func(records int, took time.Duration, err error)
	pipeline     chan struct{}  // one token per batch allowed in flight
	inflight     sync.WaitGroup // batches being written
	failures     failureLog     // failed batches, logged as an outage rather than one by one
	refused      refusedLog     // batches refused as a whole and retried record by record

	queue    chan *commitRequest
	stopping chan struct{} // closed by Close: accept nothing more, flush and exit
	done     chan struct{} // closed when the background goroutine has exited
	base     context.Context
	abort    context.CancelFunc // aborts in-flight writes when Close's context ends
	stopOnce sync.Once
}

// Option configures a GroupCommitter.
type Option func(*GroupCommitter)

// WithMaxBatch caps the number of records per transaction (default 256). Values below 1 are
// ignored.
func WithMaxBatch(n int) Option {
	return func(g *GroupCommitter) {
		if n >= 1 {
			g.maxBatch = n
		}
	}
}

// WithMaxWait makes the committer wait up to d after the first record of a batch for more
// records (until the batch is full) before writing. The default, 0, writes as soon as the
// writer is free: batches are whatever queued up while the previous one was being written,
// which adds no latency at low load.
func WithMaxWait(d time.Duration) Option {
	return func(g *GroupCommitter) {
		if d > 0 {
			g.maxWait = d
		}
	}
}

// WithWriteTimeout bounds one batch's transaction (default 5 s). A batch's deadline is the
// latest deadline among its records' contexts, or this timeout when that is later or a
// record has none.
func WithWriteTimeout(d time.Duration) Option {
	return func(g *GroupCommitter) {
		if d > 0 {
			g.writeTimeout = d
		}
	}
}

// WithPipeline lets up to n batches be in flight at once (default 1). With a store whose
// transactions serialize on the audit chain head (Postgres), the next batch's begin and
// lock round trips then overlap the previous batch's commit instead of following it. Values
// below 1 are ignored.
func WithPipeline(n int) Option {
	return func(g *GroupCommitter) {
		if n >= 1 {
			g.pipeline = make(chan struct{}, n)
		}
	}
}

// WithObserver has observe called after every batch's write with the batch's record count,
// how long the write took (transaction, fsync and all) and its error, nil when the batch
// committed. It runs on the committer's path: keep it cheap (a histogram observation).
func WithObserver(observe func(records int, took time.Duration, err error)) Option {
	return func(g *GroupCommitter) { g.observe = observe }
}

// WithLogger sets the logger for failed batches (default: slog.Default()). Records' contents
// are never logged.
func WithLogger(l *slog.Logger) Option {
	return func(g *GroupCommitter) {
		if l != nil {
			g.log = l
		}
	}
}

// Request states. A request moves from queued to taken (the background goroutine put it in a
// batch) or to abandoned (its context ended first, or the committer stopped without taking
// it); whoever moves it decides what its caller is told.
const (
	stateQueued int32 = iota
	stateTaken
	stateAbandoned
)

type commitRequest struct {
	ctx    context.Context
	rec    DecisionRecord
	state  atomic.Int32
	result chan error // buffered: receives exactly one result
}

// NewGroupCommitter starts a committer writing to w. Call Close to flush and stop it.
func NewGroupCommitter(w DecisionWriter, opts ...Option) *GroupCommitter {
	g := &GroupCommitter{
		w:            w,
		maxBatch:     256,
		writeTimeout: 5 * time.Second,
		log:          slog.Default(),
		stopping:     make(chan struct{}),
		done:         make(chan struct{}),
	}
	for _, o := range opts {
		o(g)
	}
	if g.pipeline == nil {
		g.pipeline = make(chan struct{}, 1)
	}
	g.queue = make(chan *commitRequest, g.maxBatch)
	g.base, g.abort = context.WithCancel(context.Background())
	go g.run()
	return g
}

// Commit queues rec and blocks until the transaction holding it has committed (nil) or
// failed. It returns:
//   - nil: rec is durably stored with its audit event;
//   - the store's per-record error, e.g. ErrDuplicateIdempotencyKey or an error wrapping
//     ErrInvalidRecord: rec was not written, the rest of its batch was;
//   - the batch's error wrapped, so that errors.Is(err, ErrUnavailable) holds when the
//     database could not be reached: rec was not written;
//   - ctx.Err() when ctx ends while rec is still queued: rec is withdrawn and will never be
//     written;
//   - ErrClosed when the committer was closed before rec was taken into a batch.
//
// Once rec has been taken into a batch, the transaction is under way and Commit waits for
// its outcome even if ctx ends meanwhile, reporting that outcome; the wait is bounded by
// the batch's deadline (see WithWriteTimeout). Commit is safe for concurrent use.
func (g *GroupCommitter) Commit(ctx context.Context, rec DecisionRecord) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	req := &commitRequest{ctx: ctx, rec: rec, result: make(chan error, 1)}
	select {
	case g.queue <- req:
	case <-g.stopping:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.result:
		return err
	case <-ctx.Done():
		if req.state.CompareAndSwap(stateQueued, stateAbandoned) {
			return ctx.Err()
		}
		return <-req.result
	case <-g.done:
		// The goroutine has exited. A request it took has its result buffered already; one
		// it never saw (sent as Close began) is refused.
		if req.state.CompareAndSwap(stateQueued, stateAbandoned) {
			return ErrClosed
		}
		return <-req.result
	}
}

// Close stops accepting records, writes those already queued and waits for the background
// goroutine to exit. If ctx ends first, the write in flight is aborted (its records are
// reported failed, never acknowledged), the remaining records are refused, and Close returns
// ctx.Err() once the goroutine has exited. Calling Close again waits the same way.
func (g *GroupCommitter) Close(ctx context.Context) error {
	g.stopOnce.Do(func() { close(g.stopping) })
	select {
	case <-g.done: // nothing was queued or in flight: a spent ctx changes nothing
		return nil
	default:
	}
	select {
	case <-g.done:
		return nil
	case <-ctx.Done():
		g.abort()
		<-g.done
		return ctx.Err()
	}
}

func (g *GroupCommitter) run() {
	defer close(g.done)
	defer g.abort()
	defer g.inflight.Wait()
	for {
		// Take a slot before taking records: until a slot is free they stay queued, where
		// their callers can still withdraw them, and the batch then takes everything that
		// queued up while the previous ones were written.
		select {
		case g.pipeline <- struct{}{}:
		case <-g.stopping:
			g.drain(nil)
			return
		}
		// Sized for what is queued now, not for maxBatch: at low load a batch holds one
		// record, and a 256-slot slice per batch was 2 KB of garbage per decision.
		batch := make([]*commitRequest, 0, min(g.maxBatch, 1+len(g.queue)))
		select {
		case req := <-g.queue:
			batch = g.take(batch, req)
		case <-g.stopping:
			<-g.pipeline
			g.drain(batch)
			return
		}
		if len(batch) == 0 {
			<-g.pipeline
			continue
		}
		batch = g.fill(batch)
		g.inflight.Add(1)
		go func() {
			defer g.inflight.Done()
			defer func() { <-g.pipeline }()
			g.flush(batch)
		}()
	}
}

// take adds req to batch unless its caller has given up.
func (g *GroupCommitter) take(batch []*commitRequest, req *commitRequest) []*commitRequest {
	if err := req.ctx.Err(); err != nil {
		if req.state.CompareAndSwap(stateQueued, stateAbandoned) {
			req.result <- err
		}
		return batch
	}
	if !req.state.CompareAndSwap(stateQueued, stateTaken) {
		return batch // abandoned by its caller: never written
	}
	return append(batch, req)
}

// fill adds the records already queued to batch, then, with a MaxWait, waits for more until
// the batch is full, the wait is over or the committer is stopping.
func (g *GroupCommitter) fill(batch []*commitRequest) []*commitRequest {
	for len(batch) < g.maxBatch {
		select {
		case req := <-g.queue:
			batch = g.take(batch, req)
			continue
		default:
		}
		break
	}
	if g.maxWait <= 0 || len(batch) >= g.maxBatch {
		return batch
	}
	timer := time.NewTimer(g.maxWait)
	defer timer.Stop()
	for len(batch) < g.maxBatch {
		select {
		case req := <-g.queue:
			batch = g.take(batch, req)
		case <-timer.C:
			return batch
		case <-g.stopping:
			return batch
		}
	}
	return batch
}

// drain writes batch and everything still queued. Nothing is queued after stopping closes
// except by a Commit racing with Close, which sees done and refuses its own record.
func (g *GroupCommitter) drain(batch []*commitRequest) {
	g.inflight.Wait()
	for {
		select {
		case req := <-g.queue:
			batch = g.take(batch, req)
			if len(batch) == g.maxBatch {
				g.flush(batch)
				batch = batch[:0]
			}
		default:
			if len(batch) > 0 {
				g.flush(batch)
			}
			return
		}
	}
}

// flush writes one batch and hands every record its result.
func (g *GroupCommitter) flush(batch []*commitRequest) {
	ctx, cancel := g.batchContext(batch)
	defer cancel()
	recs := make([]DecisionRecord, len(batch))
	for i, req := range batch {
		recs[i] = req.rec
	}
	start := time.Now()
	results, err := g.write(ctx, recs)
	if g.observe != nil {
		g.observe(len(recs), time.Since(start), err)
	}
	if err != nil && len(batch) > 1 && !errors.Is(err, ErrUnavailable) && ctx.Err() == nil {
		// The store refused the batch as a whole without being down: most likely one record
		// it could not take. Write the records one by one so that record alone fails.
		g.refused.refused(g.log, len(batch), err, time.Now())
		for i, req := range batch {
			req.result <- g.writeOne(ctx, recs[i])
		}
		return
	}
	if err != nil {
		g.failures.failed(g.log, len(batch), err, time.Now())
		for _, req := range batch {
			req.result <- err
		}
		return
	}
	g.failures.committed(g.log)
	for i, req := range batch {
		req.result <- results[i]
	}
}

// failureLogInterval is how often a run of failing batches is logged again.
const failureLogInterval = 10 * time.Second

// failureLog logs failing batches the way an operator reads an outage: the first failure
// at once, then at most one line per interval with the count since the last, and one line
// when a batch commits again. With the database down every batch fails, and at thousands
// of decisions a second one line per batch would flood the log when it matters most.
// verdict_commit_duration_seconds{result="error"} counts every failed batch.
type failureLog struct {
	failing atomic.Bool // read without the lock by every committed batch

	mu      sync.Mutex
	last    time.Time // when the last line was written
	batches int64     // failed batches since the last line
	records int64     // their records
	total   int64     // failed batches since the run began
}

func (f *failureLog) failed(log *slog.Logger, records int, err error, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batches++
	f.records += int64(records)
	f.total++
	failing := f.failing.Load()
	if failing && now.Sub(f.last) < failureLogInterval {
		return
	}
	if !failing {
		log.Error("decision batch failed", "records", records, "err", err)
	} else {
		log.Error("decision batches still failing", "batches", f.batches, "records", f.records, "err", err)
	}
	f.failing.Store(true)
	f.last, f.batches, f.records = now, 0, 0
}

func (f *failureLog) committed(log *slog.Logger) {
	if !f.failing.Load() {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.failing.Load() {
		return // another batch logged the recovery
	}
	log.Info("decision batches commit again", "failed_batches", f.total)
	f.failing.Store(false)
	f.last, f.batches, f.records, f.total = time.Time{}, 0, 0, 0
}

// refusedLog logs batches the store refused as a whole (and that are then retried record
// by record) once per failureLogInterval, with the count of those not logged: a record the
// store refuses every time (a subject key that no longer unwraps, say) comes back in batch
// after batch.
type refusedLog struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int64
}

func (r *refusedLog) refused(log *slog.Logger, records int, err error, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.last.IsZero() && now.Sub(r.last) < failureLogInterval {
		r.suppressed++
		return
	}
	log.Warn("decision batch refused; retrying its records one by one", "records", records, "err", err, "suppressed", r.suppressed)
	r.last, r.suppressed = now, 0
}

func (g *GroupCommitter) writeOne(ctx context.Context, rec DecisionRecord) error {
	results, err := g.write(ctx, []DecisionRecord{rec})
	if err != nil {
		return err
	}
	return results[0]
}

// write calls the writer and checks it kept its side of the contract.
func (g *GroupCommitter) write(ctx context.Context, recs []DecisionRecord) ([]error, error) {
	results, err := g.w.WriteDecisions(ctx, recs)
	if err != nil {
		return nil, fmt.Errorf("commit decisions: %w", err)
	}
	if len(results) != len(recs) {
		return nil, fmt.Errorf("commit decisions: writer returned %d results for %d records", len(results), len(recs))
	}
	return results, nil
}

// batchContext gives a batch as long as its most patient caller waits, capped by the write
// timeout. It derives from the committer, not from any caller, so one caller going away
// cannot abort the others' transaction.
func (g *GroupCommitter) batchContext(batch []*commitRequest) (context.Context, context.CancelFunc) {
	limit := time.Now().Add(g.writeTimeout)
	var latest time.Time
	for _, req := range batch {
		d, ok := req.ctx.Deadline()
		if !ok {
			latest = limit
			break
		}
		if d.After(latest) {
			latest = d
		}
	}
	if latest.After(limit) {
		latest = limit
	}
	return context.WithDeadline(g.base, latest)
}
