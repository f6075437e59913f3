package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/engine/backtest"
	"github.com/verdict-engine/verdict/signals/replay"
	"github.com/verdict-engine/verdict/store"
)

// defaultWarmup is how far before --since decisions are replayed, unevaluated, to warm
// the counters: the longest window signals look back on (a device's users over 30 days;
// velocity looks back 24 h).
const defaultWarmup = 30 * 24 * time.Hour

// runBacktest replays stored (or exported) decisions through a candidate policy bundle
// with point-in-time signals and reports how its answers compare with the live ones and
// with outcome labels.
func runBacktest(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("backtest", stderr)
	var cfg backendConfig
	backendFlags(fs, &cfg, getenv)
	var o btOptions
	fs.StringVar(&o.policies, "policies", "", "candidate policy bundle directory (required)")
	fs.StringVar(&o.action, "action", "", "evaluate and report this action only (every decision still feeds the counters)")
	since := fs.String("since", "", "first decision time to evaluate, RFC 3339 or YYYY-MM-DD (default: the oldest)")
	until := fs.String("until", "", "evaluate decisions before this time (default: all)")
	fs.DurationVar(&o.warmup, "warmup", defaultWarmup, "history before --since replayed to warm the counters, not evaluated")
	fs.StringVar(&o.input, "input", "", "read an export (FILE.jsonl or FILE.csv, in time order) instead of the store")
	sweep := fs.String("sweep", "", "sweep a numeric threshold: [action.]name=from:to:step (data.thresholds.<action>.<name>)")
	jsonOut := fs.String("json", "", "write the report as JSON to FILE")
	htmlOut := fs.String("html", "", "write a self-contained HTML report to FILE")
	fs.IntVar(&o.workers, "workers", runtime.GOMAXPROCS(0), "parallel decoders and evaluators")
	progress := fs.Bool("progress", false, "show progress on stderr even when it is not a terminal")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if o.policies == "" {
		return usageError{msg: "backtest: --policies is required"}
	}
	if o.workers < 1 {
		return usageError{msg: "backtest: --workers must be at least 1"}
	}
	var err error
	if *since != "" {
		if o.since, err = parseTime(*since); err != nil {
			return usageError{msg: "backtest: --since: " + err.Error()}
		}
	}
	if *until != "" {
		if o.until, err = parseTime(*until); err != nil {
			return usageError{msg: "backtest: --until: " + err.Error()}
		}
	}
	if o.warmup < 0 {
		return usageError{msg: "backtest: --warmup must not be negative"}
	}
	if !o.since.IsZero() && !o.until.IsZero() && !o.until.After(o.since) {
		return usageError{msg: "backtest: --until must be after --since"}
	}
	if *sweep != "" {
		s, err := parseSweep(*sweep, o.action)
		if err != nil {
			return usageError{msg: "backtest: --sweep: " + err.Error()}
		}
		o.sweep = &s
	}
	// A report path that cannot be written fails now, not after a replay of the history.
	for flag, p := range map[string]string{"--json": *jsonOut, "--html": *htmlOut} {
		if p == "" {
			continue
		}
		if st, err := os.Stat(filepath.Dir(p)); err != nil || !st.IsDir() {
			return usageError{msg: fmt.Sprintf("backtest: %s %s: no such directory %s", flag, p, filepath.Dir(p))}
		}
		if err := checkWritable(p); err != nil {
			return usageError{msg: fmt.Sprintf("backtest: %s %s: %v", flag, p, err)}
		}
	}
	if o.set, err = loadPolicies(o.policies, "--policies "+o.policies); err != nil {
		return fmt.Errorf("backtest: %w", err)
	}
	if o.action != "" {
		if _, ok := o.set.Policy(o.action); !ok {
			return usageError{msg: fmt.Sprintf("backtest: --action: the bundle in %s has no policy for action %q", o.policies, o.action)}
		}
	}
	if o.sweep != nil {
		p, ok := o.set.Policy(o.sweep.Action)
		if !ok {
			return usageError{msg: fmt.Sprintf("backtest: --sweep: the bundle in %s has no policy for action %q", o.policies, o.sweep.Action)}
		}
		// A threshold is read by its name; one no file of the policy mentions (a typo)
		// would sweep nothing and report a flat line.
		if !policyMentions(o.policies, p.Files, o.sweep.Name) {
			return usageError{msg: fmt.Sprintf("backtest: --sweep: no file of the %s policy mentions %q; check the threshold's name", o.sweep.Action, o.sweep.Name)}
		}
		for _, v := range o.sweep.Values {
			s, err := engine.Load(os.DirFS(o.policies), engine.WithData(map[string]any{
				"thresholds": map[string]any{o.sweep.Action: map[string]any{o.sweep.Name: v}},
			}))
			if err != nil {
				return fmt.Errorf("backtest: --sweep %s=%v: %w", o.sweep.Name, v, err)
			}
			p, _ := s.Policy(o.sweep.Action)
			o.sweepPolicies = append(o.sweepPolicies, p)
		}
	}

	var src btSource
	meta := backtest.Meta{Policies: o.policies, Action: o.action}
	if o.input != "" {
		f, err := os.Open(o.input)
		if err != nil {
			return fmt.Errorf("backtest: %w", err)
		}
		defer f.Close()
		src = fileSource(f, strings.HasSuffix(strings.ToLower(o.input), ".csv"))
		meta.Source = o.input
	} else {
		st, err := openExistingStore(ctx, cfg)
		if err != nil {
			return fmt.Errorf("backtest: %w", err)
		}
		defer st.Close()
		sc, ok := st.Store.(store.DecisionScanner)
		if !ok {
			return fmt.Errorf("backtest: the %s store cannot scan decisions", st.kind)
		}
		src = storeSource(sc, o.scanFilter())
		meta.Source = st.kind
	}

	if getenv("GOGC") == "" {
		// OPA allocates ~13 KB per evaluation; a batch run trades memory for less GC.
		defer debug.SetGCPercent(debug.SetGCPercent(400))
	}
	bar := newProgressBar(stderr, *progress, "backtest")
	start := time.Now()
	res, err := runBacktestPipeline(ctx, o, src, bar)
	bar.done()
	if err != nil {
		return fmt.Errorf("backtest: %w", err)
	}
	el := time.Since(start)
	rep := res.tally.Report(sweepOf(o.sweep))
	meta.Warmup, meta.Skipped = res.warm, res.skipped
	if err := backtest.WriteText(stdout, rep, meta); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "replayed %d decisions (%d evaluated, %d policy evaluations) in %s: %.0f decisions/s\n",
		res.seen, rep.Decisions, res.evals, el.Round(time.Millisecond), float64(res.seen)/el.Seconds())
	if *jsonOut != "" {
		b, err := json.MarshalIndent(struct {
			Meta backtest.Meta `json:"meta"`
			backtest.Report
		}{meta, rep}, "", "  ")
		if err != nil {
			return fmt.Errorf("backtest: encode report: %w", err)
		}
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("backtest: %w", err)
		}
	}
	if *htmlOut != "" {
		var buf bytes.Buffer
		if err := backtest.WriteHTML(&buf, rep, meta); err != nil {
			return fmt.Errorf("backtest: render HTML: %w", err)
		}
		if err := os.WriteFile(*htmlOut, buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("backtest: %w", err)
		}
	}
	return nil
}

type btOptions struct {
	policies, action, input string
	since, until            time.Time
	warmup                  time.Duration
	workers                 int
	sweep                   *backtest.Sweep
	set                     *engine.PolicySet
	sweepPolicies           []*engine.Policy
}

// scanFilter selects what the replay needs: every action (counters count across
// actions), from the start of the warm-up to --until.
func (o *btOptions) scanFilter() store.DecisionFilter {
	f := store.DecisionFilter{To: o.until}
	if !o.since.IsZero() {
		f.From = o.since.Add(-o.warmup)
	}
	return f
}

func sweepOf(s *backtest.Sweep) *backtest.Sweep { return s }

// parseSweep reads [action.]name=from:to:step.
func parseSweep(s, action string) (backtest.Sweep, error) {
	name, rng, ok := strings.Cut(s, "=")
	if !ok {
		return backtest.Sweep{}, errors.New("want [action.]name=from:to:step")
	}
	if a, n, ok := strings.Cut(name, "."); ok {
		if action != "" && a != action {
			return backtest.Sweep{}, fmt.Errorf("sweeps action %q but --action is %q", a, action)
		}
		action, name = a, n
	}
	if action == "" {
		return backtest.Sweep{}, errors.New("name the action: --action A, or action.name=...")
	}
	if !engine.ValidAction(action) || name == "" {
		return backtest.Sweep{}, fmt.Errorf("invalid threshold %q", s)
	}
	parts := strings.Split(rng, ":")
	if len(parts) != 3 {
		return backtest.Sweep{}, errors.New("want from:to:step")
	}
	var f [3]float64
	for i, p := range parts {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil {
			return backtest.Sweep{}, fmt.Errorf("%q is not a number", p)
		}
		f[i] = v
	}
	vals := backtest.SweepValues(f[0], f[1], f[2], 200)
	if vals == nil {
		return backtest.Sweep{}, errors.New("want from <= to, step > 0 and at most 200 values")
	}
	return backtest.Sweep{Action: action, Name: name, Values: vals}, nil
}

// btItem is one decision on its way through the pipeline.
type btItem struct {
	raw    []byte // the stored input JSON, or a whole export line
	line   bool   // raw is an export line (JSON) to decode entirely
	rec    store.DecisionRecord
	labels []string
	in     engine.Input
	live   engine.Outcome
	err    error
	eval   bool // replayed in range: evaluate
	// fileLine is the item's line in an export file (0: read from the store). A file's
	// line that is not a decision is an error naming it; a stored decision whose input
	// does not decode is counted and skipped.
	fileLine int
}

type btBatch struct {
	items   []btItem
	decoded chan struct{}
}

// btSource calls emit with batches of raw decisions in time order.
type btSource func(ctx context.Context, emit func(btItem) error) error

func storeSource(sc store.DecisionScanner, f store.DecisionFilter) btSource {
	return func(ctx context.Context, emit func(btItem) error) error {
		return sc.ScanDecisions(ctx, f, func(d store.LabeledDecision) error {
			it := btItem{rec: d.DecisionRecord, raw: d.Input}
			it.rec.Input, it.rec.Response = nil, nil
			for _, l := range d.Labels {
				it.labels = append(it.labels, l.Label)
			}
			return emit(it)
		})
	}
}

func fileSource(r io.Reader, isCSV bool) btSource {
	return func(ctx context.Context, emit func(btItem) error) error {
		if isCSV {
			return readCSV(r, emit)
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 1<<16), 64<<20)
		for n := 1; sc.Scan(); n++ {
			b := bytes.TrimSpace(sc.Bytes())
			if len(b) == 0 {
				continue
			}
			if err := emit(btItem{raw: bytes.Clone(b), line: true, fileLine: n}); err != nil {
				return err
			}
		}
		return sc.Err()
	}
}

type btResult struct {
	tally             *backtest.Tally
	seen, warm, evals int64
	skipped           map[string]int64
}

// runBacktestPipeline decodes decisions in parallel, replays their signals in time order
// on one goroutine, and evaluates them in parallel, each worker tallying its own rows.
func runBacktestPipeline(ctx context.Context, o btOptions, src btSource, bar *progressBar) (btResult, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	const batchSize = 256
	nSweep := 0
	if o.sweep != nil {
		nSweep = len(o.sweep.Values)
	}
	decodeCh := make(chan *btBatch, o.workers*2)
	orderCh := make(chan *btBatch, o.workers*8)
	evalCh := make(chan *btBatch, o.workers*4)

	// Source: sequential reading, in time order.
	go func() {
		defer close(decodeCh)
		defer close(orderCh)
		b := &btBatch{decoded: make(chan struct{})}
		flush := func() error {
			if len(b.items) == 0 {
				return nil
			}
			select {
			case orderCh <- b:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
			decodeCh <- b
			b = &btBatch{items: make([]btItem, 0, batchSize), decoded: make(chan struct{})}
			return nil
		}
		err := src(ctx, func(it btItem) error {
			b.items = append(b.items, it)
			if len(b.items) == batchSize {
				return flush()
			}
			return nil
		})
		if err == nil {
			err = flush()
		}
		if err != nil {
			cancel(fmt.Errorf("read decisions: %w", err))
		}
	}()

	// Decoders.
	var dwg sync.WaitGroup
	for range o.workers {
		dwg.Add(1)
		go func() {
			defer dwg.Done()
			for b := range decodeCh {
				for i := range b.items {
					decodeItem(&b.items[i])
				}
				close(b.decoded)
			}
		}()
	}

	// Evaluators, one tally each.
	tallies := make([]*backtest.Tally, o.workers)
	evals := make([]int64, o.workers)
	errCounts := make([]int64, o.workers)
	var ewg sync.WaitGroup
	eng := engine.New(o.set, engine.WithEvalTimeout(0))
	for w := range o.workers {
		tallies[w] = backtest.NewTally(nSweep)
		ewg.Add(1)
		go func() {
			defer ewg.Done()
			t := tallies[w]
			for b := range evalCh {
				for i := range b.items {
					it := &b.items[i]
					if !it.eval {
						continue
					}
					p, _ := o.set.Policy(it.rec.Action)
					row := backtest.Row{Action: it.rec.Action, At: it.rec.CreatedAt, Live: it.live, Class: backtest.ClassOf(it.labels)}
					var failed bool
					row.Candidate, failed = candidate(ctx, eng, p, &it.in)
					evals[w]++
					if failed {
						errCounts[w]++
					}
					if o.sweep != nil && it.rec.Action == o.sweep.Action {
						row.Sweep = make([]engine.Outcome, len(o.sweepPolicies))
						for k, sp := range o.sweepPolicies {
							row.Sweep[k], _ = candidate(ctx, eng, sp, &it.in)
							evals[w]++
						}
					}
					t.Add(row)
				}
			}
		}()
	}

	// Replay: sequential, in order.
	res := btResult{skipped: map[string]int64{}}
	var first, last time.Time
	rp := replay.New()
	warmFrom := time.Time{}
	if !o.since.IsZero() {
		warmFrom = o.since.Add(-o.warmup)
	}
	var replayErr error
	for b := range orderCh {
		<-b.decoded
		if replayErr != nil || ctx.Err() != nil {
			continue
		}
		for i := range b.items {
			it := &b.items[i]
			if it.err != nil {
				if it.fileLine > 0 {
					replayErr = fmt.Errorf("line %d is not a decision of an export: %v", it.fileLine, it.err)
					break
				}
				res.skipped["undecodable input"]++
				continue
			}
			at := it.rec.CreatedAt
			if at.IsZero() && it.fileLine > 0 {
				replayErr = fmt.Errorf("line %d is not a decision of an export: it has no id or created_at", it.fileLine)
				break
			}
			if (!o.until.IsZero() && !at.Before(o.until)) || (!warmFrom.IsZero() && at.Before(warmFrom)) {
				continue // out of range (export files hold everything)
			}
			if at.Before(last) {
				replayErr = fmt.Errorf("decision %s at %s comes after one at %s: the history must be in time order (sort the export by created_at)",
					it.rec.ID, at.Format(time.RFC3339Nano), last.Format(time.RFC3339Nano))
				break
			}
			last = at
			if first.IsZero() {
				first = at
			}
			res.seen++
			ev := replay.Event{ID: it.rec.ID, Action: it.rec.Action, UserID: str(it.in.Subject["id"]), DeviceID: str(it.in.Device["id"]), IP: str(it.in.Context["ip"]), At: at}
			if ev.UserID == "" {
				ev.UserID = it.rec.SubjectID
			}
			if err := rp.Apply(ev, &it.in.Signals); err != nil {
				if it.fileLine > 0 {
					replayErr = fmt.Errorf("line %d is not a decision of an export: it has no id or created_at", it.fileLine)
					break
				}
				res.skipped["no id or time"]++
				continue
			}
			switch {
			case !o.since.IsZero() && at.Before(o.since):
				res.warm++
			case o.action != "" && it.rec.Action != o.action:
			default:
				if _, ok := o.set.Policy(it.rec.Action); !ok {
					res.skipped["no policy for the action in the candidate bundle"]++
					continue
				}
				lv, err := engine.ParseOutcome(it.rec.Outcome)
				if err != nil {
					res.skipped["invalid live outcome"]++
					continue
				}
				it.live, it.eval = lv, true
			}
		}
		if replayErr != nil {
			continue
		}
		if bar != nil && !first.IsZero() {
			to := o.until
			if to.IsZero() {
				to = time.Now()
			}
			bar.update(float64(last.Sub(first))/float64(to.Sub(first)), res.seen)
		}
		select {
		case evalCh <- b:
		case <-ctx.Done():
		}
	}
	close(evalCh)
	dwg.Wait()
	ewg.Wait()
	if replayErr != nil {
		return res, replayErr
	}
	if err := context.Cause(ctx); err != nil {
		return res, err
	}
	res.tally = backtest.NewTally(nSweep)
	var errs int64
	for w := range tallies {
		res.tally.Merge(tallies[w])
		res.evals += evals[w]
		errs += errCounts[w]
	}
	if errs > 0 {
		res.skipped["candidate policy failed (fail mode applied, counted)"] = errs
	}
	return res, nil
}

// checkWritable reports whether the report file p can be written, without creating or
// truncating it: a directory, an existing file without write permission, or a directory one
// may not create files in would otherwise fail only after the whole replay.
func checkWritable(p string) error {
	if st, err := os.Stat(p); err == nil {
		if st.IsDir() {
			return errors.New("is a directory")
		}
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		return f.Close()
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".verdict-backtest-*")
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // not the probe's own name
		}
		return fmt.Errorf("cannot create it in %s: %w", filepath.Dir(p), err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// candidate evaluates p on in as the server would answer: a policy error, or a source p
// reads that is still unavailable after replay (lists, verification) or was not gathered
// for the stored decision (its policy did not read it), shapes the answer by the fail
// mode. failed reports a policy error.
func candidate(ctx context.Context, eng *engine.Engine, p *engine.Policy, in *engine.Input) (engine.Outcome, bool) {
	d, err := eng.Evaluate(ctx, p, in)
	if err != nil {
		d = engine.ApplyFailMode(d, p.FailMode, engine.CausePolicyError, true)
	}
	if len(engine.Degraded(p, &in.Signals)) > 0 {
		d = engine.ApplyFailMode(d, p.FailMode, engine.CauseSignalsUnavailable, false)
	}
	return d.Outcome, err != nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// exportLine is one line of a JSON lines export: a stored decision with its labels.
type exportLine struct {
	ID             string          `json:"id"`
	Action         string          `json:"action"`
	SubjectID      string          `json:"subject_id"`
	Outcome        string          `json:"outcome"`
	Score          float64         `json:"score"`
	ReasonCodes    []string        `json:"reason_codes"`
	PolicyVersion  string          `json:"policy_version"`
	PolicyHash     string          `json:"policy_hash"`
	FailMode       string          `json:"fail_mode,omitempty"`
	Input          json.RawMessage `json:"input"`
	Response       json.RawMessage `json:"response"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	RequestHash    string          `json:"request_hash,omitempty"`
	CreatedAt      time.Time       `json:"created_at"`
	Actor          string          `json:"actor,omitempty"`
	CorrelationID  string          `json:"correlation_id,omitempty"`
	Labels         []exportLabel   `json:"labels"`
}

type exportLabel struct {
	Label     string    `json:"label"`
	Tags      []string  `json:"tags,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	Actor     string    `json:"actor,omitempty"`
}

// importLine is exportLine as the backtest reads it: the input decoded in the same pass,
// the response skipped.
type importLine struct {
	ID            string       `json:"id"`
	Action        string       `json:"action"`
	SubjectID     string       `json:"subject_id"`
	Outcome       string       `json:"outcome"`
	PolicyVersion string       `json:"policy_version"`
	PolicyHash    string       `json:"policy_hash"`
	Input         engine.Input `json:"input"`
	CreatedAt     time.Time    `json:"created_at"`
	Labels        []struct {
		Label string `json:"label"`
	} `json:"labels"`
}

func decodeItem(it *btItem) {
	if !it.line {
		if err := json.Unmarshal(it.raw, &it.in); err != nil {
			it.err = err
		}
		it.raw = nil
		return
	}
	var l importLine
	if err := json.Unmarshal(it.raw, &l); err != nil {
		it.err = err
		return
	}
	it.raw = nil
	it.rec = store.DecisionRecord{ID: l.ID, Action: l.Action, SubjectID: l.SubjectID, Outcome: l.Outcome,
		PolicyVersion: l.PolicyVersion, PolicyHash: l.PolicyHash, CreatedAt: l.CreatedAt}
	it.in = l.Input
	if it.rec.Action == "" {
		it.rec.Action = it.in.Action
	}
	for _, x := range l.Labels {
		it.labels = append(it.labels, x.Label)
	}
}

// csvHeader is the header of a CSV export; labels is a ";"-separated list.
var csvHeader = []string{"id", "action", "subject_id", "outcome", "score", "reason_codes", "policy_version", "policy_hash", "created_at", "labels", "input"}

// exportWriter writes decisions as JSON lines or CSV.
type exportWriter struct {
	bw  *bufio.Writer
	csv *csv.Writer
	enc *json.Encoder
}

func newExportWriter(w io.Writer, isCSV bool) *exportWriter {
	e := &exportWriter{bw: bufio.NewWriterSize(w, 1<<20)}
	if isCSV {
		e.csv = csv.NewWriter(e.bw)
		e.csv.Write(csvHeader)
	} else {
		e.enc = json.NewEncoder(e.bw)
		e.enc.SetEscapeHTML(false)
	}
	return e
}

func (e *exportWriter) write(d *store.LabeledDecision) error {
	if e.csv != nil {
		ls := make([]string, len(d.Labels))
		for i, l := range d.Labels {
			ls[i] = l.Label
		}
		return e.csv.Write([]string{d.ID, d.Action, d.SubjectID, d.Outcome, strconv.FormatFloat(d.Score, 'g', -1, 64),
			strings.Join(d.ReasonCodes, ";"), d.PolicyVersion, d.PolicyHash, d.CreatedAt.UTC().Format(time.RFC3339Nano),
			strings.Join(ls, ";"), string(d.Input)})
	}
	l := exportLine{ID: d.ID, Action: d.Action, SubjectID: d.SubjectID, Outcome: d.Outcome, Score: d.Score, ReasonCodes: d.ReasonCodes,
		PolicyVersion: d.PolicyVersion, PolicyHash: d.PolicyHash, FailMode: d.FailMode, Input: d.Input, Response: d.Response,
		IdempotencyKey: d.IdempotencyKey, RequestHash: d.RequestHash, CreatedAt: d.CreatedAt.UTC(), Actor: d.Actor,
		CorrelationID: d.CorrelationID, Labels: []exportLabel{}}
	for _, x := range d.Labels {
		l.Labels = append(l.Labels, exportLabel{Label: x.Label, Tags: x.Tags, CreatedAt: x.CreatedAt.UTC(), Actor: x.Actor})
	}
	return e.enc.Encode(l)
}

func (e *exportWriter) flush() error {
	if e.csv != nil {
		e.csv.Flush()
		if err := e.csv.Error(); err != nil {
			return err
		}
	}
	return e.bw.Flush()
}

// readCSV reads a CSV export: a header naming at least id, action, outcome, created_at
// and input (labels, subject_id optional), in any order.
func readCSV(r io.Reader, emit func(btItem) error) error {
	cr := csv.NewReader(bufio.NewReaderSize(r, 1<<20))
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return fmt.Errorf("csv header: %w", err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[strings.TrimSpace(strings.ToLower(h))] = i
	}
	for _, need := range []string{"id", "action", "outcome", "created_at", "input"} {
		if _, ok := col[need]; !ok {
			return fmt.Errorf("csv header: no %q column", need)
		}
	}
	get := func(row []string, name string) string {
		if i, ok := col[name]; ok && i < len(row) {
			return row[i]
		}
		return ""
	}
	for line := 2; ; line++ {
		row, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("csv: %w", err)
		}
		at, err := time.Parse(time.RFC3339Nano, get(row, "created_at"))
		if err != nil {
			return fmt.Errorf("csv line %d: created_at: %w", line, err)
		}
		it := btItem{raw: []byte(get(row, "input")), fileLine: line, rec: store.DecisionRecord{
			ID: get(row, "id"), Action: get(row, "action"), SubjectID: get(row, "subject_id"), Outcome: get(row, "outcome"), CreatedAt: at,
		}}
		if ls := get(row, "labels"); ls != "" {
			it.labels = strings.Split(ls, ";")
		}
		if err := emit(it); err != nil {
			return err
		}
	}
}

// policyMentions reports whether any of files (paths in the bundle in dir) holds name.
func policyMentions(dir string, files []string, name string) bool {
	fsys := os.DirFS(dir)
	for _, f := range files {
		if b, err := fs.ReadFile(fsys, f); err == nil && bytes.Contains(b, []byte(name)) {
			return true
		}
	}
	return false
}
