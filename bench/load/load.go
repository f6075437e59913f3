// Package load drives an HTTP decision server with a realistic request mix and measures
// it, in one of two ways:
//
//   - OpenLoop sends a fixed number of requests per second whatever the server does, and
//     measures each request's latency from the time it was scheduled, not from the time it
//     was sent: a server that stalls sees its queue in the figures (no coordinated
//     omission).
//   - ClosedLoop keeps N connections busy back to back, which measures throughput at
//     saturation.
//
// Bodies are generated once (Mix.Bodies) and sent from reused buffers over keep-alive
// connections, so the generator costs a few microseconds of CPU per request.
package load

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Target is where and what to send.
type Target struct {
	URL     string            // e.g. http://127.0.0.1:8080/v1/decide
	Bodies  *Bodies           // request bodies, sent in turn
	Header  map[string]string // extra request headers, e.g. Authorization
	Timeout time.Duration     // per request; 2 s when zero
}

func (t Target) validate() error {
	if t.Bodies == nil || t.Bodies.Len() == 0 {
		return errors.New("target has no bodies")
	}
	return nil
}

// Phase marks the edges of a run's measured window.
type Phase int

const (
	// PhaseMeasure: the warm-up is over and the measured window opens.
	PhaseMeasure Phase = iota
	// PhaseDone: the measured window closes.
	PhaseDone
)

// Result is one run's figures over its measured window (the warm-up excluded).
type Result struct {
	Mode     string  `json:"mode"` // "open" or "closed"
	Rate     int     `json:"rate,omitempty"`
	Conns    int     `json:"conns,omitempty"`
	Seconds  float64 `json:"seconds"`
	Requests int64   `json:"requests"` // answered or failed within the window
	OK       int64   `json:"ok"`
	Errors   int64   `json:"errors"` // non-200 answers and transport errors
	// Missed counts open-loop requests that were scheduled in the window but never sent
	// because the server was so far behind that they were still queued at the hard stop.
	Missed       int64            `json:"missed,omitempty"`
	Status       map[string]int64 `json:"status,omitempty"`        // non-200 answers by status
	ErrorSamples []string         `json:"error_samples,omitempty"` // a few distinct errors
	Throughput   float64          `json:"throughput_rps"`          // 200 answers per second
	Latency      Percentiles      `json:"latency"`                 // of 200 answers
	// DispatchLag is how late the generator's pacer released open-loop requests after
	// their scheduled time: the generator's own lateness (timer precision, CPU
	// contention), which counts in Latency.
	DispatchLag *Percentiles `json:"dispatch_lag,omitempty"`
	// MaxInFlight is the most open-loop requests in flight at once. When it reaches
	// Workers, later requests waited in the generator for a connection (the server fell
	// behind); that wait counts in Latency, as it would for a client with a pool.
	MaxInFlight int64 `json:"max_in_flight,omitempty"`
	Workers     int   `json:"workers,omitempty"`

	latNs, lagNs []int64 // sorted samples, for Merge
}

// Merge combines runs of the same kind (e.g. rounds of one measurement) into one result
// whose percentiles are computed over all their samples. It returns nil for no runs.
func Merge(runs ...*Result) *Result {
	if len(runs) == 0 {
		return nil
	}
	if len(runs) == 1 {
		return runs[0]
	}
	m := &Result{Mode: runs[0].Mode, Rate: runs[0].Rate, Conns: runs[0].Conns}
	var lat, lag []int64
	for _, r := range runs {
		m.Seconds += r.Seconds
		m.Requests += r.Requests
		m.OK += r.OK
		m.Errors += r.Errors
		m.Missed += r.Missed
		m.MaxInFlight = max(m.MaxInFlight, r.MaxInFlight)
		m.Workers = r.Workers
		for k, v := range r.Status {
			if m.Status == nil {
				m.Status = map[string]int64{}
			}
			m.Status[k] += v
		}
		for _, s := range r.ErrorSamples {
			if len(m.ErrorSamples) < 5 && !slices.Contains(m.ErrorSamples, s) {
				m.ErrorSamples = append(m.ErrorSamples, s)
			}
		}
		lat = append(lat, r.latNs...)
		lag = append(lag, r.lagNs...)
	}
	if m.Seconds > 0 {
		m.Throughput = float64(m.OK) / m.Seconds
	}
	m.Latency, m.latNs = percentiles(lat), lat
	if runs[0].DispatchLag != nil {
		dl := percentiles(lag)
		m.DispatchLag, m.lagNs = &dl, lag
	}
	return m
}

// Percentiles summarises a latency distribution, in milliseconds.
type Percentiles struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

// percentiles sorts ns in place and summarises it (nearest rank).
func percentiles(ns []int64) Percentiles {
	if len(ns) == 0 {
		return Percentiles{}
	}
	slices.Sort(ns)
	at := func(p float64) float64 {
		i := int(p*float64(len(ns))+0.999999) - 1
		i = max(0, min(i, len(ns)-1))
		return ms(ns[i])
	}
	return Percentiles{Count: int64(len(ns)), P50: at(0.50), P99: at(0.99), P999: at(0.999), Max: ms(ns[len(ns)-1])}
}

func ms(ns int64) float64 { return float64(ns/1000) / 1000 }

// failures collects errors off the hot path.
type failures struct {
	mu      sync.Mutex
	status  map[string]int64
	samples []string
}

func (f *failures) add(status int, err error, body []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var msg string
	if err != nil {
		msg = err.Error()
	} else {
		key := fmt.Sprint(status)
		if f.status == nil {
			f.status = map[string]int64{}
		}
		f.status[key]++
		msg = fmt.Sprintf("status %d: %.160s", status, body)
	}
	if len(f.samples) < 5 && !slices.Contains(f.samples, msg) {
		f.samples = append(f.samples, msg)
	}
}

func (f *failures) fill(r *Result) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r.Status, r.ErrorSamples = f.status, f.samples
}

func checkDurations(warmup, dur time.Duration) error {
	if dur <= 0 || dur > 10*time.Minute {
		return errors.New("duration must be within (0, 10m]")
	}
	if warmup < 0 || warmup > time.Minute {
		return errors.New("warm-up must be within [0, 1m]")
	}
	return nil
}

// maxOpenRequests bounds an open-loop run (16 bytes of samples per request).
const maxOpenRequests = 20_000_000

// OpenLoop sends Rate requests per second for Warmup+Duration and measures the last
// Duration. Each request's latency counts from its scheduled time.
type OpenLoop struct {
	Rate     int           // requests per second, 1 to 100,000
	Warmup   time.Duration // sent but not measured
	Duration time.Duration // measured
	// Workers bounds the requests in flight (and connections); 128 when zero. When all
	// are busy, requests wait in the generator and their wait counts in their latency.
	Workers int
	// Grace is how long after the window requests still queued in the generator are
	// sent; later they count as Missed. 2 s when zero.
	Grace time.Duration
	// Observe, when set, is called as the measured window opens and closes (from
	// another goroutine, off the request path), e.g. to sample the server's CPU time.
	Observe func(Phase)
}

// Run drives t and returns the figures of the measured window. It returns an error when
// the settings are invalid, and stops early (with an error) when ctx is done.
func (o OpenLoop) Run(ctx context.Context, t Target) (*Result, error) {
	if o.Rate <= 0 || o.Rate > 100000 {
		return nil, errors.New("rate must be within [1, 100000]")
	}
	if err := checkDurations(o.Warmup, o.Duration); err != nil {
		return nil, err
	}
	if err := t.validate(); err != nil {
		return nil, err
	}
	workers := o.Workers
	if workers <= 0 {
		workers = 128
	}
	grace := o.Grace
	if grace <= 0 {
		grace = 2 * time.Second
	}
	c, err := newClient(t, workers, true)
	if err != nil {
		return nil, err
	}
	defer c.close()

	nWarm := int(o.Warmup.Seconds() * float64(o.Rate))
	n := nWarm + int(o.Duration.Seconds()*float64(o.Rate))
	if n > maxOpenRequests {
		return nil, fmt.Errorf("rate × (warm-up + duration) is %d requests; at most %d", n, maxOpenRequests)
	}
	interval := float64(time.Second) / float64(o.Rate)
	start := time.Now().Add(2 * time.Millisecond)
	sched := func(k int) time.Time { return start.Add(time.Duration(float64(k) * interval)) }
	measureFrom, end := sched(nWarm), sched(n)
	hardStop := end.Add(grace)

	// Slot k is written by the one worker that sends it: no locks on the hot path.
	const (
		unsent = 0
		failed = -1
	)
	lat := make([]int64, n)
	lag := make([]int64, n)
	var fails failures
	var inFlight, maxInFlight atomic.Int64
	jobs := make(chan int32, 4096)
	done := ctx.Done()
	var wg sync.WaitGroup
	for range workers {
		s := c.sender()
		wg.Go(func() {
			for k := range jobs {
				at := sched(int(k))
				if time.Now().After(hardStop) || isDone(done) {
					continue // stays unsent: counted as missed
				}
				for n, m := inFlight.Add(1), maxInFlight.Load(); n > m && !maxInFlight.CompareAndSwap(m, n); m = maxInFlight.Load() {
				}
				status, err := s.send(t.Bodies.Next())
				d := int64(time.Since(at))
				inFlight.Add(-1)
				if err != nil || status != 200 {
					lat[k] = failed
					if int(k) >= nWarm {
						fails.add(status, err, s.resp.Body())
					}
					continue
				}
				lat[k] = max(1, d)
			}
		})
	}
	stopObserve := observeWindow(ctx, o.Observe, measureFrom, end)
	defer stopObserve()

	func() {
		p := startPacer()
		defer p.stop()
		defer close(jobs)
		for k := range n {
			if isDone(done) {
				return
			}
			at := sched(k)
			p.sleepUntil(at)
			now := time.Now()
			if now.After(hardStop) {
				return
			}
			// Written before the send, read after the workers are done: no race.
			lag[k] = max(1, int64(now.Sub(at)))
			jobs <- int32(k)
		}
	}()
	wg.Wait()
	stopObserve()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	r := &Result{Mode: "open", Rate: o.Rate, Seconds: end.Sub(measureFrom).Seconds(), MaxInFlight: maxInFlight.Load(), Workers: workers}
	ok := make([]int64, 0, n-nWarm)
	lags := make([]int64, 0, n-nWarm)
	for k := nWarm; k < n; k++ {
		switch v := lat[k]; v {
		case unsent:
			r.Missed++
		case failed:
			r.Errors++
			lags = append(lags, lag[k])
		default:
			ok = append(ok, v)
			lags = append(lags, lag[k])
		}
	}
	r.OK = int64(len(ok))
	r.Requests = r.OK + r.Errors
	r.Throughput = float64(r.OK) / r.Seconds
	r.Latency, r.latNs = percentiles(ok), ok
	dl := percentiles(lags)
	r.DispatchLag, r.lagNs = &dl, lags
	fails.fill(r)
	return r, nil
}

func isDone(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// observeWindow calls observe at from and at end from a goroutine. The returned stop
// waits for the window to close, or gives up at once when ctx is done; it is safe to
// call twice.
func observeWindow(ctx context.Context, observe func(Phase), from, end time.Time) (stop func()) {
	if observe == nil {
		return func() {}
	}
	quit := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for _, p := range []struct {
			at    time.Time
			phase Phase
		}{{from, PhaseMeasure}, {end, PhaseDone}} {
			select {
			case <-quit:
				return
			case <-time.After(time.Until(p.at)):
			}
			observe(p.phase)
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			select {
			case <-finished:
			case <-ctx.Done():
				close(quit)
				<-finished
			}
		})
	}
}

// ClosedLoop keeps Conns connections busy back to back for Warmup+Duration and measures
// the last Duration: throughput at saturation.
type ClosedLoop struct {
	Conns    int // connections, 1 to 4096
	Warmup   time.Duration
	Duration time.Duration
	// Observe, when set, is called as the measured window opens and closes.
	Observe func(Phase)
}

// Run drives t and returns the figures of the measured window: requests that completed
// within it, and the latency of those that also started within it. It returns an error
// when the settings are invalid or ctx is done.
func (cl ClosedLoop) Run(ctx context.Context, t Target) (*Result, error) {
	if cl.Conns <= 0 || cl.Conns > 4096 {
		return nil, errors.New("conns must be within [1, 4096]")
	}
	if err := checkDurations(cl.Warmup, cl.Duration); err != nil {
		return nil, err
	}
	if err := t.validate(); err != nil {
		return nil, err
	}
	c, err := newClient(t, cl.Conns, false)
	if err != nil {
		return nil, err
	}
	defer c.close()

	start := time.Now()
	measureFrom := start.Add(cl.Warmup)
	end := measureFrom.Add(cl.Duration)
	stopObserve := observeWindow(ctx, cl.Observe, measureFrom, end)
	defer stopObserve()

	done := ctx.Done()
	var fails failures
	var okN, errN atomic.Int64
	var mu sync.Mutex
	var all []int64
	var wg sync.WaitGroup
	for range cl.Conns {
		s := c.sender()
		wg.Go(func() {
			local := make([]int64, 0, 4096)
			for !isDone(done) {
				t0 := time.Now()
				if !t0.Before(end) {
					break
				}
				status, err := s.send(t.Bodies.Next())
				t1 := time.Now()
				if t1.Before(measureFrom) || t1.After(end) {
					continue
				}
				if err != nil || status != 200 {
					errN.Add(1)
					fails.add(status, err, s.resp.Body())
					continue
				}
				okN.Add(1)
				if !t0.Before(measureFrom) {
					local = append(local, max(1, int64(t1.Sub(t0))))
				}
			}
			mu.Lock()
			all = append(all, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	stopObserve()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := &Result{Mode: "closed", Conns: cl.Conns, Seconds: cl.Duration.Seconds(), OK: okN.Load(), Errors: errN.Load()}
	r.Requests = r.OK + r.Errors
	r.Throughput = float64(r.OK) / r.Seconds
	r.Latency, r.latNs = percentiles(all), all
	fails.fill(r)
	return r, nil
}

// Probe sends n bodies one at a time and counts the outcomes of the decisions answered,
// to check that a server decides (OPA answers 200 with {} when its policy is missing)
// and that two servers reach the same outcomes on the same requests. It returns an error
// at the first non-200 answer or answer without an outcome.
func Probe(ctx context.Context, t Target, f Format, n int) (map[string]int, error) {
	if err := t.validate(); err != nil {
		return nil, err
	}
	c, err := newClient(t, 1, true)
	if err != nil {
		return nil, err
	}
	defer c.close()
	s := c.sender()
	out := map[string]int{}
	for range n {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		status, err := s.send(t.Bodies.Next())
		if err != nil {
			return out, err
		}
		if status != 200 {
			return out, fmt.Errorf("status %d: %.300s", status, s.resp.Body())
		}
		o, err := f.Outcome(s.resp.Body())
		if err != nil {
			return out, err
		}
		out[o]++
	}
	return out, nil
}

// Shares returns the outcome counts as fractions, sorted by outcome, for reports.
func Shares(counts map[string]int) []Share {
	total := 0
	for _, n := range counts {
		total += n
	}
	out := make([]Share, 0, len(counts))
	for o, n := range counts {
		out = append(out, Share{Outcome: o, Fraction: float64(n) / float64(max(total, 1))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Outcome < out[j].Outcome })
	return out
}

// Share is one outcome's fraction of a probe's answers.
type Share struct {
	Outcome  string  `json:"outcome"`
	Fraction float64 `json:"fraction"`
}
