package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/verdict-engine/verdict/bench/seed"
	"github.com/verdict-engine/verdict/store"
	"github.com/verdict-engine/verdict/store/postgres"
)

// errSeededBefore: decision ids derive from --seed and the events' times, so a store that
// already holds one holds this history (or part of it).
var errSeededBefore = errors.New("the store already holds decisions of this history (the same --seed and --end were seeded into it before); use another --seed or --end, or a fresh store")

// runSeed generates a synthetic labelled history, decides it with the shipped (or
// --policies) bundle and writes it to the configured store, or to a JSON lines export
// with --out.
func runSeed(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("seed", stderr)
	var cfg backendConfig
	backendFlags(fs, &cfg, getenv)
	n := fs.Int("decisions", 100_000, "decisions to generate")
	days := fs.Int("days", 90, "days of history, ending at --end")
	seedN := fs.Uint64("seed", 1, "random seed: the same seed and --end give the same history")
	endS := fs.String("end", "", "end of the history, RFC 3339 (default: now, to the hour)")
	out := fs.String("out", "", "write JSON lines (FILE.jsonl) or CSV (FILE.csv) instead of the store, in the format backtest --input reads")
	policiesDir := fs.String("policies", envOr(getenv, "VERDICT_POLICIES", ""), "policy bundle that makes the live decisions (default: the embedded bundle) [VERDICT_POLICIES]")
	batchSize := fs.Int("batch", 5000, "decisions per store transaction")
	progress := fs.Bool("progress", false, "show progress on stderr even when it is not a terminal")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *n <= 0 || *days <= 0 || *batchSize <= 0 {
		return usageError{msg: "seed: --decisions, --days and --batch must be positive"}
	}
	end := time.Now().UTC().Truncate(time.Hour)
	if *endS != "" {
		t, err := parseTime(*endS)
		if err != nil {
			return usageError{msg: "seed: --end: " + err.Error()}
		}
		end = t
	}
	set, err := loadPolicies(*policiesDir, policiesSetting(fs, *policiesDir))
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}

	var sink seed.Sink
	var finish func() error
	var opts seed.Options
	dest := ""
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		defer f.Close()
		w := newExportWriter(f, strings.HasSuffix(strings.ToLower(*out), ".csv"))
		sink = func(_ context.Context, batch []store.LabeledDecision) error {
			for i := range batch {
				if err := w.write(&batch[i]); err != nil {
					return fmt.Errorf("write %s: %w", *out, err)
				}
			}
			return nil
		}
		finish = func() error {
			if err := w.flush(); err != nil {
				return err
			}
			return f.Close()
		}
		dest = *out
	} else {
		st, err := openStore(ctx, cfg)
		if err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		defer st.Close()
		// Seed creates an embedded store, but writes into Postgres only on a schema the
		// server would run on: an unmigrated one failed on its first table, blamed on the
		// master key, after creating a master key file.
		if pg, ok := st.Store.(*postgres.Store); ok {
			if err := schemaBehind(ctx, pg); err != nil {
				return fmt.Errorf("seed: %w", err)
			}
		}
		announceStore(cfg, st)
		labels, ok := st.Store.(store.LabelStore)
		if !ok {
			return fmt.Errorf("seed: the %s store cannot store outcome labels", st.kind)
		}
		// Seeded decisions are stored as the server stores its own: the IP pseudonymised
		// with the deployment's key, the raw value sealed under the subject's key.
		// Key files it makes keys for are written only once the store has accepted them: a
		// refused seed leaves no key file behind.
		var pending []newKeyFile
		vlt, pseudonyms, err := openVaultKeys(ctx, cfg.dataDir, getenv, st, false, nil, &pending)
		if err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		if err := checkPseudonymKey(ctx, pseudonyms, st, cfg.dataDir, getenv); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		if err := checkMasterKeys(ctx, vlt, st, cfg.dataDir, getenv); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		if err := writeKeyFiles(pending); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		opts.Private, opts.Pseudonyms = true, pseudonyms
		writer := vlt.Writer(st)
		corr := fmt.Sprintf("seed-%d", *seedN)
		sink = func(ctx context.Context, batch []store.LabeledDecision) error {
			recs := make([]store.DecisionRecord, len(batch))
			var ls []store.OutcomeLabel
			for i := range batch {
				recs[i] = batch[i].DecisionRecord
				ls = append(ls, batch[i].Labels...)
			}
			results, err := writer.WriteDecisions(ctx, recs)
			if errors.Is(err, store.ErrConflict) {
				return errSeededBefore
			}
			if err != nil {
				return err // the store's error names the operation
			}
			for i, e := range results {
				if errors.Is(e, store.ErrConflict) {
					return errSeededBefore
				}
				if e != nil {
					return fmt.Errorf("write decision %s: %w", recs[i].ID, e)
				}
			}
			if len(ls) > 0 {
				if _, err := labels.PutLabels(ctx, ls, corr); err != nil {
					return fmt.Errorf("put labels: %w", err)
				}
			}
			return nil
		}
		finish = func() error { return nil }
		dest = st.kind
	}

	if getenv("GOGC") == "" {
		// OPA allocates ~13 KB per evaluation; a batch run trades memory for less GC.
		defer debug.SetGCPercent(debug.SetGCPercent(400))
	}
	bar := newProgressBar(stderr, *progress, "seed")
	start := time.Now()
	opts.BatchSize = *batchSize
	opts.Progress = func(done int) { bar.update(float64(done)/float64(*n), int64(done)) }
	stats, err := seed.Run(ctx, seed.Config{Decisions: *n, Days: *days, End: end, Seed: *seedN}, set, sink, opts)
	bar.done()
	if err == nil {
		err = finish()
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("seed: interrupted after %d decisions", stats.Decisions)
		}
		return fmt.Errorf("seed: %w", err)
	}
	el := time.Since(start)
	fmt.Fprintf(stdout, "seeded %d decisions from %s to %s (asked: %d days ending %s) into %s in %s (%.0f decisions/s)\n",
		stats.Decisions, stats.First.UTC().Format(time.RFC3339), stats.Last.UTC().Format(time.RFC3339), *days, end.Format(time.RFC3339),
		dest, el.Round(time.Millisecond), float64(stats.Decisions)/el.Seconds())
	fmt.Fprintf(stdout, "scenarios: %s\noutcomes:  %s\nlabels:    %s\n", counts(stats.ByScenario), counts(stats.ByOutcome), counts(stats.Labels))
	return nil
}

// counts formats a count map as "k=v" pairs sorted by key.
func counts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s=%d", k, m[k])
	}
	return b.String()
}

// progressBar draws a one-line progress bar on a terminal, at most every 200 ms.
type progressBar struct {
	w     io.Writer
	on    bool
	label string
	start time.Time
	last  time.Time
}

// newProgressBar returns a bar drawn on w when w is a terminal or force is set.
func newProgressBar(w io.Writer, force bool, label string) *progressBar {
	on := force
	if f, ok := w.(*os.File); ok && !on {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			on = true
		}
	}
	return &progressBar{w: w, on: on, label: label, start: time.Now()}
}

func (p *progressBar) update(frac float64, n int64) {
	if !p.on {
		return
	}
	now := time.Now()
	if now.Sub(p.last) < 200*time.Millisecond {
		return
	}
	p.last = now
	frac = min(max(frac, 0), 1)
	const width = 30
	full := int(frac * width)
	el := now.Sub(p.start)
	eta := "?"
	if frac > 0.01 {
		eta = (time.Duration(float64(el)/frac) - el).Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "\r%s [%s%s] %5.1f%% %d decisions, %.0f/s, ETA %s   ", p.label,
		strings.Repeat("=", full), strings.Repeat(" ", width-full), 100*frac, n, float64(n)/el.Seconds(), eta)
}

func (p *progressBar) done() {
	if p.on && !p.last.IsZero() {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

// parseTime reads RFC 3339 or a date (YYYY-MM-DD, UTC midnight).
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want RFC 3339 (2026-01-02T15:04:05Z) or a date (2026-01-02)", s)
	}
	return t, nil
}
