package http

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/store"
)

// ShadowSource gives the compiled shadow versions of an action (policysync.Syncer).
type ShadowSource interface {
	// Shadow returns the action's shadow policies, each stamped with its version's hash;
	// the caller does not modify the slice.
	Shadow(action string) []*engine.Policy
}

// ShadowWriter stores shadow outcomes (store.PolicyStore).
type ShadowWriter interface {
	WriteShadowResults(ctx context.Context, rs []store.ShadowResult) error
}

// Shadow evaluates the shadow versions of an action on the exact input of each live
// decision, after its answer, and stores their outcomes in batches. The request pays
// one non-blocking channel send: when the queue is full the evaluation is dropped and
// counted, never waited for. A shadow outcome is never returned to the caller.
type Shadow struct {
	eng    *engine.Engine
	src    ShadowSource
	w      ShadowWriter
	log    *slog.Logger
	m      *shadowMetrics
	cfg    shadowConfig
	jobs   chan shadowJob
	result chan store.ShadowResult

	sample  *sampler      // nil: every decision
	stop    chan struct{} // closed by Close: workers drain the queue and return
	done    chan struct{} // closed once every result is written
	workers sync.WaitGroup
	writer  sync.WaitGroup
	once    sync.Once
}

type shadowJob struct {
	decisionID string
	in         *engine.Input
	live       engine.Outcome
}

type shadowConfig struct {
	workers    int
	queue      int
	batch      int
	flushEvery time.Duration
	rate       float64 // decisions per second sampled for shadow evaluation; 0: all
	reg        prometheus.Registerer
	log        *slog.Logger
}

// ShadowOption configures a Shadow.
type ShadowOption func(*shadowConfig)

// WithShadowWorkers sets how many goroutines evaluate shadow versions (default 1).
func WithShadowWorkers(n int) ShadowOption { return func(c *shadowConfig) { c.workers = n } }

// WithShadowQueue sets how many decisions may wait for shadow evaluation before new ones
// are dropped (default 1024).
func WithShadowQueue(n int) ShadowOption { return func(c *shadowConfig) { c.queue = n } }

// WithShadowRate bounds how many decisions per second are shadow-evaluated (default
// DefaultShadowRate; 0 evaluates every decision). Decisions over the rate are skipped and
// counted in verdict_shadow_skipped_total: the agreement report is then over a sample,
// spread evenly over time, and the evaluations' CPU and garbage stay too small to show in
// the live p99.
func WithShadowRate(perSecond float64) ShadowOption {
	return func(c *shadowConfig) { c.rate = perSecond }
}

// DefaultShadowRate is the default of WithShadowRate.
const DefaultShadowRate = 20

// WithShadowBatch sets when results are written: every n results or every d, whichever
// comes first (default 256 and 1 s). Each write holds the embedded store's one write
// connection, which live decisions then wait for: the fewer writes, the fewer decisions
// delayed. A second's delay does not matter to the shadow report, read over hours.
func WithShadowBatch(n int, d time.Duration) ShadowOption {
	return func(c *shadowConfig) { c.batch, c.flushEvery = n, d }
}

// WithShadowRegisterer registers the shadow metrics: verdict_shadow_evaluations_total,
// verdict_shadow_disagreements_total, verdict_shadow_dropped_total,
// verdict_shadow_skipped_total and
// verdict_shadow_errors_total (by action; errors also by stage).
func WithShadowRegisterer(r prometheus.Registerer) ShadowOption {
	return func(c *shadowConfig) { c.reg = r }
}

// WithShadowLogger sets the logger (default: discard).
func WithShadowLogger(l *slog.Logger) ShadowOption { return func(c *shadowConfig) { c.log = l } }

// NewShadow returns a Shadow evaluating src's versions with eng and writing their
// outcomes to w. Start starts its goroutines; Close stops them.
func NewShadow(eng *engine.Engine, src ShadowSource, w ShadowWriter, opts ...ShadowOption) *Shadow {
	cfg := shadowConfig{workers: 1, queue: 1024, batch: 256, flushEvery: time.Second, rate: DefaultShadowRate}
	for _, o := range opts {
		o(&cfg)
	}
	cfg.workers, cfg.queue, cfg.batch = max(cfg.workers, 1), max(cfg.queue, 1), max(cfg.batch, 1)
	if cfg.flushEvery <= 0 {
		cfg.flushEvery = time.Second
	}
	if cfg.log == nil {
		cfg.log = slog.New(slog.DiscardHandler)
	}
	var smp *sampler
	if cfg.rate > 0 {
		smp = &sampler{rate: cfg.rate, burst: max(cfg.rate/10, 1), tokens: max(cfg.rate/10, 1)}
	}
	return &Shadow{
		sample: smp,
		eng:    eng, src: src, w: w, log: cfg.log, m: newShadowMetrics(cfg.reg), cfg: cfg,
		jobs: make(chan shadowJob, cfg.queue), result: make(chan store.ShadowResult, cfg.batch),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
}

// Start starts the workers and the writer.
func (s *Shadow) Start() {
	for range s.cfg.workers {
		s.workers.Go(s.work)
	}
	s.writer.Go(s.write)
}

// Close stops taking decisions, evaluates those queued, writes every result and
// returns; or gives up when ctx is done, and returns its error. Call it once the HTTP
// server no longer serves requests.
func (s *Shadow) Close(ctx context.Context) error {
	s.once.Do(func() {
		close(s.stop)
		go func() {
			s.workers.Wait()
			close(s.result) // only workers send results
			s.writer.Wait()
			close(s.done)
		}()
	})
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Enqueue queues a stored live decision for shadow evaluation when its action has
// shadow versions. It never blocks: a full queue drops it. in must not change
// afterwards. A nil Shadow does nothing.
func (s *Shadow) Enqueue(decisionID string, in *engine.Input, live engine.Outcome) {
	if s == nil || len(s.src.Shadow(in.Action)) == 0 {
		return
	}
	if s.sample != nil && !s.sample.take(time.Now()) {
		s.m.skipped.WithLabelValues(in.Action).Inc()
		return
	}
	select {
	case s.jobs <- shadowJob{decisionID: decisionID, in: in, live: live}:
	default:
		s.m.dropped.WithLabelValues(in.Action).Inc()
	}
}

// Reads returns the signal sources the action's shadow versions read: the live decision
// gathers them too, so that they evaluate on the signals they need. 0 for a nil Shadow.
func (s *Shadow) Reads(action string) engine.Sources {
	if s == nil {
		return 0
	}
	var reads engine.Sources
	for _, p := range s.src.Shadow(action) {
		reads |= p.Reads()
	}
	return reads
}

// work drains the queue on a ticker rather than waking on each job: a worker woken by
// the request's own channel send would run next on the request's processor, competing
// with the answer it follows.
func (s *Shadow) work() {
	t := time.NewTicker(shadowPoll)
	defer t.Stop()
	drain := func() {
		for {
			select {
			case j := <-s.jobs:
				s.evaluate(j)
			default:
				return
			}
		}
	}
	for {
		select {
		case <-t.C:
			drain()
		case <-s.stop:
			drain()
			return
		}
	}
}

// shadowPoll is how often workers look for queued decisions.
const shadowPoll = 5 * time.Millisecond

// evaluate runs every shadow version of the job's action on its input and answers as
// the live path would have: the version's fail mode applies to a policy error and to
// unavailable (or not gathered) signals it reads, so the outcomes compare with the live
// answer.
func (s *Shadow) evaluate(j shadowJob) {
	action := j.in.Action
	for _, p := range s.src.Shadow(action) {
		// Let runnable request goroutines go first: without this, a worker working
		// through a backlog holds its P until preempted (10 ms), which shows in p99.
		runtime.Gosched()
		d, err := s.eng.Evaluate(context.Background(), p, j.in)
		if err != nil {
			s.m.errors.WithLabelValues(action, "evaluate").Inc()
			d = engine.ApplyFailMode(d, p.FailMode, engine.CausePolicyError, true)
		}
		if len(engine.Degraded(p, &j.in.Signals)) > 0 {
			d = engine.ApplyFailMode(d, p.FailMode, engine.CauseSignalsUnavailable, false)
		}
		s.m.evaluations.WithLabelValues(action).Inc()
		if d.Outcome != j.live {
			s.m.disagreements.WithLabelValues(action).Inc()
		}
		s.result <- store.ShadowResult{
			DecisionID: j.decisionID, Action: action, Hash: p.Hash, Outcome: d.Outcome.String(),
			ReasonCodes: reasonCodes(d.Reasons), CreatedAt: time.Now().UTC(),
		}
	}
}

// write batches results and stores them every batch results or flushEvery.
func (s *Shadow) write() {
	t := time.NewTicker(s.cfg.flushEvery)
	defer t.Stop()
	batch := make([]store.ShadowResult, 0, s.cfg.batch)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.w.WriteShadowResults(ctx, batch); err != nil {
			for _, r := range batch {
				s.m.errors.WithLabelValues(r.Action, "write").Inc()
			}
			s.log.Warn("shadow results not stored", "results", len(batch), "err", err)
		}
		batch = make([]store.ShadowResult, 0, s.cfg.batch)
	}
	for {
		select {
		case r, ok := <-s.result:
			if !ok {
				flush()
				return
			}
			batch = append(batch, r)
			if len(batch) >= s.cfg.batch {
				flush()
			}
		case <-t.C:
			flush()
		}
	}
}

type shadowMetrics struct {
	evaluations   *prometheus.CounterVec
	disagreements *prometheus.CounterVec
	dropped       *prometheus.CounterVec
	skipped       *prometheus.CounterVec
	errors        *prometheus.CounterVec
}

func newShadowMetrics(reg prometheus.Registerer) *shadowMetrics {
	m := &shadowMetrics{
		evaluations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verdict_shadow_evaluations_total", Help: "Shadow policy versions evaluated on live decisions, by action.",
		}, []string{"action"}),
		disagreements: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verdict_shadow_disagreements_total", Help: "Shadow evaluations whose outcome differs from the live answer, by action.",
		}, []string{"action"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verdict_shadow_skipped_total", Help: "Live decisions not shadow-evaluated because they were over the sampling rate, by action.",
		}, []string{"action"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verdict_shadow_dropped_total", Help: "Live decisions not shadow-evaluated because the queue was full, by action.",
		}, []string{"action"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verdict_shadow_errors_total", Help: "Shadow evaluations that failed (stage evaluate) and results not stored (stage write), by action.",
		}, []string{"action", "stage"}),
	}
	if reg != nil {
		reg.MustRegister(m.evaluations, m.disagreements, m.dropped, m.skipped, m.errors)
	}
	return m
}

// sampler is a token bucket: rate tokens a second, at most burst saved.
type sampler struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func (b *sampler) take(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
