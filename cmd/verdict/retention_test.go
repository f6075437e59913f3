package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/verdict-engine/verdict/store"
	"github.com/verdict-engine/verdict/store/sqlite"
)

func TestRetentionRun(t *testing.T) {
	dir := t.TempDir()
	// A past time: a run (not a dry run) refuses one to come.
	now := time.Now().UTC().AddDate(0, -1, 0).Truncate(time.Second)
	st, err := sqlite.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	old, recent := now.AddDate(0, 0, -400), now.AddDate(0, 0, -5)
	var recs []store.DecisionRecord
	for i, at := range []time.Time{old, old, recent} {
		id := []string{"d-old-1", "d-old-2", "d-new"}[i]
		recs = append(recs, store.DecisionRecord{ID: id, Action: "login", SubjectID: "u-" + id, Outcome: "approve",
			Input: json.RawMessage(`{}`), Response: json.RawMessage(`{}`), CreatedAt: at, Actor: "seed"})
	}
	if _, err := st.WriteDecisions(t.Context(), recs); err != nil {
		t.Fatal(err)
	}
	blobKey := "verifications/v-old/selfie"
	blobPath := filepath.Join(dir, "evidence", filepath.FromSlash(blobKey))
	if err := os.MkdirAll(filepath.Dir(blobPath), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blobPath, []byte("img"), 0o600); err != nil {
		t.Fatal(err)
	}
	v := store.Verification{ID: "v-old", UserID: "u-1", Provider: "sandbox", Status: store.StatusApproved, CreatedAt: old, UpdatedAt: old,
		Evidence: []store.Evidence{{ID: "e1", Kind: "selfie", BlobKey: blobKey, SHA256: strings.Repeat("c", 64), State: store.EvidenceUploaded, CreatedAt: old}}}
	if _, _, err := st.CreateVerification(t.Context(), store.NewVerification{Verification: v, Actor: "seed"}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	policy := filepath.Join(t.TempDir(), "retention.json")
	if err := os.WriteFile(policy, []byte(`{"policies": {"kyc-default": {"raw_evidence": "90d", "raw_payloads": "30d",
		"consent_records": "1y", "review_notes": "1y", "verification_outcomes": "1y"}}, "decisions": "1y", "labels": "1y"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string {
		if k == "VERDICT_RETENTION_FILE" {
			return policy
		}
		return ""
	}
	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := runRetention(t.Context(), args, getenv, &out, &errOut)
		return out.String(), err
	}
	row := func(out, class, policy string) string {
		m := regexp.MustCompile(`(?m)^` + class + `\s+` + policy + `\s+\S+\s+\S+\s+(\d+)\s+(\S+)$`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no row %s/%s in\n%s", class, policy, out)
		}
		return m[1] + "/" + m[2]
	}

	out, err := run("run", "--dry-run", "--data-dir", dir, "--now", now.Format(time.RFC3339))
	if err != nil {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	for _, want := range []struct{ class, policy, dueDeleted string }{
		{"raw_evidence", "kyc-default", "1/-"}, {"decisions", "top-level", "2/-"}, {"verification_outcomes", "kyc-default", "0/-"},
	} {
		if got := row(out, want.class, want.policy); got != want.dueDeleted {
			t.Errorf("dry run %s = %s, want %s\n%s", want.class, got, want.dueDeleted, out)
		}
	}
	if !strings.Contains(out, "nothing deleted (dry run)") || !strings.Contains(out, policy) {
		t.Errorf("dry run output:\n%s", out)
	}
	if _, err := os.Stat(blobPath); err != nil {
		t.Fatalf("dry run deleted the blob: %v", err)
	}

	// A time to come is for previews: deleting at it would delete records still inside
	// their retention period.
	future := time.Now().AddDate(5, 0, 0).UTC().Format(time.RFC3339)
	var ue usageError
	if out, err := run("run", "--data-dir", dir, "--now", future); !errors.As(err, &ue) || !strings.Contains(err.Error(), "is in the future") || out != "" {
		t.Fatalf("run at a future --now: %v\n%s", err, out)
	}
	if _, err := os.Stat(blobPath); err != nil {
		t.Fatalf("a run refused for its --now deleted the blob: %v", err)
	}
	if out, err := run("run", "--dry-run", "--data-dir", dir, "--now", future); err != nil || !strings.Contains(out, "nothing deleted (dry run)") {
		t.Fatalf("dry run at a future --now: %v\n%s", err, out)
	}

	out, err = run("run", "--data-dir", dir, "--now", now.Format(time.RFC3339), "--batch", "1")
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	for _, want := range []struct{ class, policy, dueDeleted string }{
		{"raw_evidence", "kyc-default", "1/1"}, {"verification_outcomes", "kyc-default", "1/1"}, {"decisions", "top-level", "2/2"},
	} {
		if got := row(out, want.class, want.policy); got != want.dueDeleted {
			t.Errorf("run %s = %s, want %s\n%s", want.class, got, want.dueDeleted, out)
		}
	}
	if _, err := os.Stat(blobPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("blob after run: %v, want gone", err)
	}

	var vout, verr bytes.Buffer
	if err := runAudit(t.Context(), []string{"verify", "--data-dir", dir}, getenv, &vout, &verr); err != nil {
		t.Fatalf("audit verify after retention: %v\n%s", err, verr.String())
	}

	out, err = run("run", "--data-dir", dir, "--now", now.Format(time.RFC3339))
	if err != nil || !strings.Contains(out, "0 records due, 0 deleted") {
		t.Errorf("second run = %v\n%s", err, out)
	}

	st, err = sqlite.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.GetDecision(t.Context(), "d-new"); err != nil {
		t.Errorf("recent decision: %v", err)
	}
	if _, err := st.GetDecision(t.Context(), "d-old-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("old decision: %v, want ErrNotFound", err)
	}
}

func TestRetentionErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("policies:\n  kyc-default:\n    raw_evidence: 90 days\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(string) string { return "" }
	for _, tc := range []struct {
		name  string
		args  []string
		usage bool
		want  string
	}{
		{"bad policy file", []string{"run", "--data-dir", dir, "--retention", bad}, false, bad + `: policies.kyc-default.raw_evidence: "90 days" is not a retention period`},
		{"missing policy file", []string{"run", "--data-dir", dir, "--retention", filepath.Join(dir, "nope.yaml")}, false, "no such file"},
		{"bad now", []string{"run", "--data-dir", dir, "--now", "yesterday"}, true, "--now"},
		{"bad batch", []string{"run", "--data-dir", dir, "--batch", "0"}, true, "--batch"},
		{"no subcommand", nil, true, "missing subcommand"},
		{"unknown subcommand", []string{"purge"}, true, "unknown subcommand"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := runRetention(t.Context(), tc.args, getenv, &out, &errOut)
			var ue usageError
			if err == nil || errors.As(err, &ue) != tc.usage || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error = %v (usage %v), want one line containing %q (usage %v)", err, errors.As(err, &ue), tc.want, tc.usage)
			}
		})
	}
	var out bytes.Buffer
	if err := runRetention(t.Context(), []string{"default"}, getenv, &out, &out); err != nil || !strings.Contains(out.String(), "kyc-default:") {
		t.Errorf("retention default = %v\n%s", err, out.String())
	}
}

// TestDeletionNeedsTheBucket: retention and erasure pointed at a data directory without the
// server's evidence bucket (a Postgres operator leaving out --data-dir) must not create an
// empty one in which every object is "already deleted": deletions fail and say where the
// bucket was looked for.
func TestDeletionNeedsTheBucket(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "elsewhere")
	ev, err := openEvidenceForDeletion(context.Background(), dir, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	if err := ev.Delete(context.Background(), "evidence/ver_1/evd_1"); err == nil || !strings.Contains(err.Error(), "no evidence bucket at") {
		t.Fatalf("Delete in a missing bucket = %v, want an error naming it", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "evidence")); !os.IsNotExist(err) {
		t.Fatalf("the bucket directory was created: %v", err)
	}
}
