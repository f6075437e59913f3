package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/verdict-engine/verdict/adapters/vault"
	"github.com/verdict-engine/verdict/engine/backtest"
)

type backtestJSON struct {
	backtest.Report
}

func runOK(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := map[string]func(context.Context, []string, func(string) string, io.Writer, io.Writer) error{"seed": runSeed, "backtest": runBacktest}[args[0]]
	if err := cmd(context.Background(), args[1:], func(k string) string { return env[k] }, &out, &errb); err != nil {
		t.Fatalf("verdict %v: %v\nstderr: %s", args, err, errb.String())
	}
	return out.String()
}

// TestSeedAndBacktest seeds 5,000 decisions into the embedded store and into an export
// file, backtests the shipped bundle on both, and checks the report against counts made
// here with plain loops over the export: the shipped bundle replayed with point-in-time
// signals must give back every live outcome.
func TestSeedAndBacktest(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"VERDICT_DATA_DIR": filepath.Join(dir, "data")}
	export := filepath.Join(dir, "history.jsonl")
	common := []string{"--decisions", "5000", "--days", "10", "--seed", "7", "--end", "2026-06-01"}
	runOK(t, env, append([]string{"seed", "--out", export}, common...)...)
	runOK(t, env, append([]string{"seed"}, common...)...)

	bundle := shippedBundle(t)
	fromFile, fromStore := filepath.Join(dir, "file.json"), filepath.Join(dir, "store.json")
	sweep := "payout.max_unverified_amount=100:200:100"
	runOK(t, env, "backtest", "--policies", bundle, "--input", export, "--sweep", sweep, "--json", fromFile, "--html", filepath.Join(dir, "r.html"))
	runOK(t, env, "backtest", "--policies", bundle, "--sweep", sweep, "--json", fromStore)
	var a, b backtestJSON
	for p, r := range map[string]*backtestJSON{fromFile: &a, fromStore: &b} {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, r); err != nil {
			t.Fatal(err)
		}
	}

	// Independent counts from the export.
	f, err := os.Open(export)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var n, pos, neg, liveBlock, liveReview, blockTP, blockFP, brTP, brFP, payouts int64
	live := map[string]int64{}
	payoutLive := map[string]int64{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var l exportLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		n++
		live[l.Outcome]++
		if l.Action == "payout" {
			payouts++
			payoutLive[l.Outcome]++
		}
		isPos, isNeg := false, false
		for _, x := range l.Labels {
			switch x.Label {
			case "fraud", "chargeback":
				isPos = true
			case "legit", "false_positive":
				isNeg = true
			}
		}
		isNeg = isNeg && !isPos
		if isPos {
			pos++
		}
		if isNeg {
			neg++
		}
		if l.Outcome == "block" {
			liveBlock++
			if isPos {
				blockTP++
			}
			if isNeg {
				blockFP++
			}
		}
		if l.Outcome == "review" {
			liveReview++
		}
		if l.Outcome == "block" || l.Outcome == "review" {
			if isPos {
				brTP++
			}
			if isNeg {
				brFP++
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 5000 {
		t.Fatalf("export holds %d decisions, want 5000", n)
	}
	r := a.Report
	if r.Decisions != n || r.Labels.Positive != pos || r.Labels.Negative != neg || r.Labels.Unlabelled != n-pos-neg {
		t.Errorf("decisions %d labels %+v; want %d, %d positive, %d negative", r.Decisions, r.Labels, n, pos, neg)
	}
	for _, o := range backtest.AllOutcomes() {
		if got, want := r.Live.Outcomes.Of(o), live[o.String()]; got != want {
			t.Errorf("live %s: %d, want %d", o, got, want)
		}
		// Same bundle, same point-in-time signals: the same answers.
		if got, want := r.Candidate.Outcomes.Of(o), live[o.String()]; got != want {
			t.Errorf("candidate %s: %d, want the live %d", o, got, want)
		}
	}
	var offDiagonal int64
	for i := range r.Changes {
		for j := range r.Changes[i] {
			if i != j {
				offDiagonal += r.Changes[i][j]
			}
		}
	}
	if offDiagonal != 0 {
		t.Errorf("%d decisions changed outcome replaying the live bundle: %v", offDiagonal, r.Changes)
	}
	if p := r.Live.Block; p.TP != blockTP || p.FP != blockFP || p.FN != pos-blockTP || p.TN != neg-blockFP {
		t.Errorf("live block P/R counts %+v, want tp %d fp %d", p, blockTP, blockFP)
	}
	if p := r.Live.BlockReview; p.TP != brTP || p.FP != brFP {
		t.Errorf("live block+review counts %+v, want tp %d fp %d", p, brTP, brFP)
	}
	if r.Live.Outcomes.Block != liveBlock || r.Candidate.Outcomes.Review != liveReview {
		t.Errorf("blocks %d reviews %d, want %d %d", r.Live.Outcomes.Block, r.Candidate.Outcomes.Review, liveBlock, liveReview)
	}
	// The sweep point at the shipped default (200) is the live payout mix.
	if r.Sweep == nil || len(r.Sweep.Points) != 2 || r.Sweep.Decisions != payouts {
		t.Fatalf("sweep %+v, want 2 points over %d payouts", r.Sweep, payouts)
	}
	for _, o := range backtest.AllOutcomes() {
		if got, want := r.Sweep.Points[1].Outcomes.Of(o), payoutLive[o.String()]; got != want {
			t.Errorf("sweep at 200, %s: %d, want the live %d", o, got, want)
		}
	}
	if r.Sweep.Points[0].Outcomes.Block < r.Sweep.Points[1].Outcomes.Block {
		t.Errorf("a higher unverified limit blocks more: %d at 100, %d at 200", r.Sweep.Points[0].Outcomes.Block, r.Sweep.Points[1].Outcomes.Block)
	}
	if pos == 0 || neg == 0 || liveBlock == 0 || liveReview == 0 {
		t.Errorf("the history lacks variety: %d positive, %d negative, %d blocks, %d reviews", pos, neg, liveBlock, liveReview)
	}

	// The store and the export hold the same history and give the same report.
	if !reflect.DeepEqual(a.Report, b.Report) {
		t.Errorf("store and export reports differ:\nfile  %+v\nstore %+v", a.Report, b.Report)
	}
}

// TestBacktestSinceWarmup checks that decisions before --since are replayed but not
// reported, and that --action limits the report without changing the counters.
func TestBacktestSinceWarmup(t *testing.T) {
	dir := t.TempDir()
	export := filepath.Join(dir, "h.csv")
	runOK(t, nil, "seed", "--decisions", "1500", "--days", "6", "--seed", "3", "--end", "2026-06-01", "--out", export)
	bundle := shippedBundle(t)
	out := filepath.Join(dir, "r.json")
	runOK(t, nil, "backtest", "--policies", bundle, "--input", export, "--since", "2026-05-29", "--action", "payout", "--json", out)
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Meta backtest.Meta `json:"meta"`
		backtest.Report
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	if r.Meta.Warmup == 0 || r.Decisions == 0 || r.Decisions >= 1500 {
		t.Errorf("warm-up %d, evaluated %d", r.Meta.Warmup, r.Decisions)
	}
	if r.From.Before(mustTime(t, "2026-05-29")) {
		t.Errorf("first evaluated decision at %s, before --since", r.From)
	}
	// Warmed up with everything before, the payouts in range replay to their live answers.
	for i := range r.Changes {
		for j := range r.Changes[i] {
			if i != j && r.Changes[i][j] != 0 {
				t.Fatalf("changes %v: live answers not reproduced after warm-up", r.Changes)
			}
		}
	}
}

func mustTime(t *testing.T, s string) (tm engineTime) {
	t.Helper()
	v, err := parseTime(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

type engineTime = time.Time

// shippedBundle returns the path of policies/bundle, found from the module root.
func shippedBundle(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "policies", "bundle")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
}

// TestBacktestRefusesAFileThatIsNotAnExport: a line of --input that is not a decision is an
// error naming the line, not a decision counted as skipped in a report that exits 0.
func TestBacktestRefusesAFileThatIsNotAnExport(t *testing.T) {
	dir := t.TempDir()
	bundle := shippedBundle(t)
	export := filepath.Join(dir, "h.jsonl")
	runOK(t, nil, "seed", "--decisions", "20", "--days", "1", "--seed", "3", "--end", "2026-06-01", "--out", export)
	good, err := os.ReadFile(export)
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := bytes.Cut(good, []byte("\n"))
	for name, tc := range map[string]struct{ body, want string }{
		"not JSON":            {"not json\n", "line 1 is not a decision"},
		"garbage after lines": {string(first) + "\n\n\x00\xff binary\n", "line 3 is not a decision"},
		"JSON, no decision":   {"{}\n", "line 1 is not a decision"},
		"no time, mid-file":   {string(first) + "\n" + `{"id":"x"}` + "\n", "line 2 is not a decision"},
	} {
		t.Run(name, func(t *testing.T) {
			f := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".jsonl")
			if err := os.WriteFile(f, []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errb bytes.Buffer
			err := runBacktest(context.Background(), []string{"--policies", bundle, "--input", f}, func(string) string { return "" }, &out, &errb)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// A sweep of a threshold no file of the policy mentions (a typo) is refused.
	if err := runBacktest(context.Background(), []string{"--policies", bundle, "--input", export, "--sweep", "payout.max_unverifed_amount=50:300:50"},
		func(string) string { return "" }, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "mentions") {
		t.Fatalf("sweep of a misspelt threshold: %v", err)
	}
	if err := runBacktest(context.Background(), []string{"--policies", bundle, "--input", export, "--warmup", "-5h"},
		func(string) string { return "" }, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "--warmup must not be negative") {
		t.Fatalf("negative --warmup: %v", err)
	}
	// A report path in no directory is refused before the replay.
	var out, errb bytes.Buffer
	err = runBacktest(context.Background(), []string{"--policies", bundle, "--input", export, "--json", filepath.Join(dir, "nowhere", "r.json")},
		func(string) string { return "" }, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "no such directory") {
		t.Fatalf("--json in a missing directory: %v", err)
	}
	// So is one that is a directory, and (when not root) one in a directory it cannot write.
	err = runBacktest(context.Background(), []string{"--policies", bundle, "--input", export, "--html", dir},
		func(string) string { return "" }, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "is a directory") || out.Len() > 0 {
		t.Fatalf("--html naming a directory: %v, printed %q", err, out.String())
	}
	if os.Geteuid() != 0 {
		ro := filepath.Join(dir, "ro")
		os.Mkdir(ro, 0o555)
		err = runBacktest(context.Background(), []string{"--policies", bundle, "--input", export, "--json", filepath.Join(ro, "r.json")},
			func(string) string { return "" }, &out, &errb)
		if err == nil || !strings.Contains(err.Error(), "cannot create it") || out.Len() > 0 {
			t.Fatalf("--json in a read-only directory: %v, printed %q", err, out.String())
		}
	}
}

// TestSeedStoresDecisionsAsTheServerDoes: seeded decisions keep no raw IP in the store, as
// the server's do: the snapshot holds the IP's pseudonym and the raw value is sealed under
// the subject's key, so a backtest on seeded history sees what it would see on real history.
func TestSeedStoresDecisionsAsTheServerDoes(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	env := map[string]string{"VERDICT_DATA_DIR": data}
	export := filepath.Join(dir, "history.jsonl")
	common := []string{"--decisions", "300", "--days", "2", "--seed", "3", "--end", "2026-06-01"}
	runOK(t, env, append([]string{"seed", "--out", export}, common...)...)
	runOK(t, env, append([]string{"seed"}, common...)...)

	raw, err := os.ReadFile(export)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := openStore(ctx, backendConfig{dataDir: data})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	v, ps, err := openVault(ctx, data, func(string) string { return "" }, st, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	ips := map[string]bool{}
	for line := range bytes.Lines(raw) {
		var l exportLine
		var in struct {
			Context struct {
				IP string `json:"ip"`
			} `json:"context"`
		}
		if err := json.Unmarshal(line, &l); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(l.Input, &in); err != nil || in.Context.IP == "" {
			t.Fatalf("export line %s: no context.ip (%v)", l.ID, err)
		}
		ips[in.Context.IP] = true
		rec, err := st.GetDecision(ctx, l.ID)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(rec.Input, []byte(in.Context.IP)) {
			t.Fatalf("decision %s: the stored snapshot holds the raw IP: %s", l.ID, rec.Input)
		}
		if want := `"ip":"` + ps.IP(in.Context.IP) + `"`; !bytes.Contains(rec.Input, []byte(want)) {
			t.Fatalf("decision %s: the stored snapshot lacks %s: %s", l.ID, want, rec.Input)
		}
		plain, err := v.Open(ctx, rec.SubjectID, vault.DecisionAD(rec.ID), rec.PII)
		if err != nil {
			t.Fatalf("decision %s: open its sealed personal data: %v", l.ID, err)
		}
		if !bytes.Contains(plain, []byte(`"`+in.Context.IP+`"`)) {
			t.Fatalf("decision %s: the sealed personal data lacks the raw IP: %s", l.ID, plain)
		}
	}
	st.Close()
	// Nothing at rest holds a raw IP: the database, its WAL, anything else in the data dir.
	err = filepath.WalkDir(data, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for ip := range ips {
			if bytes.Contains(b, []byte(ip)) {
				t.Errorf("%s holds the raw IP %s", p, ip)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestBacktestNamesOfNothingAreUsageErrors: an action the bundle lacks, in --action or in
// --sweep, is a mistake in the command line (exit 2), as a threshold name no file mentions is.
func TestBacktestNamesOfNothingAreUsageErrors(t *testing.T) {
	bundle := shippedBundle(t)
	env := map[string]string{"VERDICT_DATA_DIR": t.TempDir()}
	for _, args := range [][]string{
		{"--action", "nosuch"},
		{"--sweep", "nosuch.max_unverified_amount=100:200:100"},
		{"--sweep", "payout.nosuch=100:200:100"},
	} {
		err := runBacktest(context.Background(), append([]string{"--policies", bundle}, args...), func(k string) string { return env[k] }, io.Discard, io.Discard)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("backtest %v: %v, want a usage error", args, err)
		}
	}
}

// TestSeedTwiceSaysSo: seeding the same history into a store again is refused with a
// sentence saying why, not the database's constraint message.
func TestSeedTwiceSaysSo(t *testing.T) {
	env := map[string]string{"VERDICT_DATA_DIR": filepath.Join(t.TempDir(), "data")}
	args := []string{"--decisions", "200", "--days", "2", "--seed", "5", "--end", "2026-06-01"}
	runOK(t, env, append([]string{"seed"}, args...)...)
	err := runSeed(context.Background(), args, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if !errors.Is(err, errSeededBefore) {
		t.Fatalf("second seed: %v, want errSeededBefore", err)
	}
}
