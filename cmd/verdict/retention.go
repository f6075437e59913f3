package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/verdict-engine/verdict/adapters/evidence"
	"github.com/verdict-engine/verdict/adapters/retention"
	"github.com/verdict-engine/verdict/store"
)

const retentionUsage = `Usage:
  verdict retention run [--dry-run] [--retention FILE] [--now RFC3339] [--batch N]
      delete what the retention policies say is due (evidence blobs, raw payloads, consent,
      review rows, sessions, labels, decisions), one audit event per batch; --dry-run only counts
  verdict retention default
      print the embedded default policy file
`

func runRetention(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, retentionUsage)
		return usageError{msg: "retention: missing subcommand (run, default)"}
	}
	switch args[0] {
	case "run":
		return runRetentionRun(ctx, args[1:], getenv, stdout, stderr)
	case "default":
		if err := parseFlags(newFlagSet("retention default", stderr), args[1:]); err != nil {
			return err
		}
		_, err := stdout.Write(retention.DefaultFile())
		return err
	}
	fmt.Fprint(stderr, retentionUsage)
	return usageError{msg: fmt.Sprintf("retention: unknown subcommand %q", args[0])}
}

func runRetentionRun(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("retention run", stderr)
	var cfg backendConfig
	backendFlags(fs, &cfg, getenv)
	dryRun := fs.Bool("dry-run", false, "count what is due; delete nothing")
	file := fs.String("retention", getenv("VERDICT_RETENTION_FILE"), "retention policy file, YAML or JSON (default: the embedded policy, see `verdict retention default`) [VERDICT_RETENTION_FILE]")
	nowFlag := fs.String("now", "", "evaluate the policies at this RFC 3339 time instead of the clock")
	batch := fs.Int("batch", 500, "records per deletion transaction (one audit event each)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	now := time.Now()
	if *nowFlag != "" {
		t, err := time.Parse(time.RFC3339Nano, *nowFlag)
		if err != nil {
			return usageError{msg: fmt.Sprintf("retention run: --now: %q is not an RFC 3339 time", *nowFlag)}
		}
		// A time to come previews what will be due then; deleting at it would delete
		// records still inside the period they must be kept for (the dry run's
		// `--now 2031-10-01` without --dry-run deleted five years of decisions).
		if t.After(now) && !*dryRun {
			return usageError{msg: fmt.Sprintf("retention run: --now %s is in the future: it would delete records before their retention period ends; use it with --dry-run", *nowFlag)}
		}
		now = t
	}
	if *batch < 1 {
		return usageError{msg: "retention run: --batch must be at least 1"}
	}
	policies, err := retention.Load(*file)
	if err != nil {
		return fmt.Errorf("retention run: %w", err)
	}
	st, err := openExistingStore(ctx, cfg)
	if err != nil {
		return fmt.Errorf("retention run: %w", err)
	}
	defer st.Close()
	job := &retention.Job{Store: st, Policies: policies, BatchSize: *batch, Actor: "retention-cli"}
	if !*dryRun {
		ev, err := openEvidenceForDeletion(ctx, cfg.dataDir, getenv)
		if err != nil {
			return fmt.Errorf("retention run: %w", err)
		}
		defer ev.Close()
		job.Blobs = ev
	}
	results, err := job.Run(ctx, now, *dryRun)
	printRetention(stdout, policies, now, results, *dryRun)
	if err != nil {
		return fmt.Errorf("retention run: %w", err)
	}
	undefined, err := job.Undefined(ctx)
	if err != nil {
		return fmt.Errorf("retention run: %w", err)
	}
	names := make([]string, 0, len(undefined))
	for name := range undefined {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fmt.Fprintf(stdout, "warning: %d verification sessions name retention policy %q, which %s does not define: they are never deleted\n",
			undefined[name], name, policies.Source)
	}
	return nil
}

func printRetention(w io.Writer, ps *retention.Policies, now time.Time, results []retention.Result, dryRun bool) {
	mode := "run"
	if dryRun {
		mode = "dry run"
	}
	fmt.Fprintf(w, "retention %s at %s, policies from %s\n", mode, now.UTC().Format(time.RFC3339), ps.Source)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CLASS\tPOLICY\tPERIOD\tCUTOFF\tDUE\tDELETED")
	due, deleted := 0, 0
	for _, r := range results {
		cutoff, del := "-", fmt.Sprint(r.Deleted)
		if !r.Period.Kept() {
			cutoff = r.Cutoff.UTC().Format(time.RFC3339)
		}
		if dryRun {
			del = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", r.Class, r.Policy, r.Period, cutoff, r.Due, del)
		due += r.Due
		deleted += r.Deleted
	}
	tw.Flush()
	if dryRun {
		fmt.Fprintf(w, "%d records due; nothing deleted (dry run)\n", due)
		return
	}
	fmt.Fprintf(w, "%d records due, %d deleted\n", due, deleted)
}

// openEvidenceForDeletion opens the evidence bucket serve uses (VERDICT_EVIDENCE_URL, or
// <data-dir>/evidence) for deleting objects only: a local bucket gets a throwaway signing
// key, since no upload URL is ever signed with it.
func openEvidenceForDeletion(ctx context.Context, dataDir string, getenv func(string) string) (evidenceDeleter, error) {
	if u := getenv("VERDICT_EVIDENCE_URL"); u != "" {
		ev, err := evidence.Open(ctx, u, 0)
		if err != nil {
			return nil, fmt.Errorf("VERDICT_EVIDENCE_URL: %w", err)
		}
		return ev, nil
	}
	dir := filepath.Join(dataDir, "evidence")
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		// Opening it would create an empty bucket in which every object is "already
		// deleted": pointers would be marked deleted, or an erasure report evidence
		// deleted, while the files stay in the server's bucket, out of every later reach.
		return missingBucket{dir: dir}, nil
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	unused, _ := url.Parse("http://127.0.0.1/unused")
	return evidence.OpenLocal(dir, unused, key, 0)
}

// evidenceDeleter deletes evidence objects (retention, erasure).
type evidenceDeleter interface {
	Delete(ctx context.Context, key string) error
	Close() error
}

// missingBucket stands for a local evidence bucket that is not there: every deletion fails
// and says where the bucket was looked for, so nothing is counted or marked deleted.
type missingBucket struct{ dir string }

func (m missingBucket) Delete(context.Context, string) error {
	abs, _ := filepath.Abs(m.dir)
	return fmt.Errorf("no evidence bucket at %s: give the server's --data-dir (its bucket is <data-dir>/evidence) or VERDICT_EVIDENCE_URL", abs)
}

func (missingBucket) Close() error { return nil }

// startRetention starts the retention job for serve: it runs at once and then hourly,
// with the policy file VERDICT_RETENTION_FILE (default: the embedded policy), until ctx
// ends, then releases the evidence bucket it opened. A bad policy file is an error at
// start.
func startRetention(ctx context.Context, dataDir string, getenv func(string) string, st store.Retention, policies *retention.Policies, log *slog.Logger) error {
	ev, err := openEvidenceForDeletion(ctx, dataDir, getenv)
	if err != nil {
		return err
	}
	job := &retention.Job{Store: st, Blobs: ev, Policies: policies, Actor: "retention", Logger: log}
	go func() {
		defer ev.Close()
		job.RunEvery(ctx, time.Hour, time.Now)
	}()
	log.Info("retention job started", "policies", policies.Source, "every", "1h")
	return nil
}
