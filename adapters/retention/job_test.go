package retention_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verdict-engine/verdict/adapters/evidence"
	"github.com/verdict-engine/verdict/adapters/retention"
	"github.com/verdict-engine/verdict/store"
	"github.com/verdict-engine/verdict/store/sqlite"
)

const policyFile = `
policies:
  kyc-default: {raw_evidence: 90d, raw_payloads: 30d, consent_records: 1y, review_notes: 1y, verification_outcomes: 2y}
  kyc-eu:      {raw_evidence: keep, raw_payloads: keep, consent_records: keep, review_notes: keep, verification_outcomes: keep}
decisions: 2y
labels: 1y
`

func TestJobDeletesBlobsThenMarksPointers(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	bucketDir := filepath.Join(dir, "evidence")
	up, _ := url.Parse("http://127.0.0.1/v1/evidence/upload")
	ev, err := evidence.OpenLocal(bucketDir, up, make([]byte, 32), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ev.Close() })
	ps, err := retention.Parse("policy.yaml", []byte(policyFile))
	if err != nil {
		t.Fatal(err)
	}

	now := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	blob := func(key string) string { return filepath.Join(bucketDir, filepath.FromSlash(key)) }
	session := func(id, policy string, age time.Duration, missingBlob bool) {
		t.Helper()
		at := now.Add(-age)
		var items []store.Evidence
		for _, kind := range []string{"document_front", "selfie"} {
			key := "verifications/" + id + "/" + kind
			items = append(items, store.Evidence{ID: id + "-" + kind, Kind: kind, BlobKey: key, SHA256: strings.Repeat("a", 64),
				ContentType: "image/jpeg", Size: 3, State: store.EvidenceUploaded, CreatedAt: at, UploadedAt: at})
			if missingBlob && kind == "selfie" {
				continue // already gone: deleting it is not an error
			}
			if err := os.MkdirAll(filepath.Dir(blob(key)), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(blob(key), []byte("img"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		v := store.Verification{ID: id, UserID: "user-" + id, Provider: "sandbox", Status: store.StatusApproved,
			Evidence: items, RetentionPolicy: policy, CreatedAt: at, UpdatedAt: at}
		if _, _, err := st.CreateVerification(ctx, store.NewVerification{Verification: v, Actor: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	session("old", "", 100*24*time.Hour, true)
	session("new", "kyc-default", 10*24*time.Hour, false)
	session("eu", "kyc-eu", 1000*24*time.Hour, false)

	job := &retention.Job{Store: st, Blobs: ev, Policies: ps, BatchSize: 1}
	results, err := job.Run(ctx, now, true)
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	find := func(rs []retention.Result, class, policy string) retention.Result {
		for _, r := range rs {
			if r.Class == class && r.Policy == policy {
				return r
			}
		}
		t.Fatalf("no result for %s/%s in %+v", class, policy, rs)
		return retention.Result{}
	}
	if r := find(results, store.ClassRawEvidence, "kyc-default"); r.Due != 2 || r.Deleted != 0 {
		t.Errorf("dry run raw_evidence = %+v, want 2 due, 0 deleted", r)
	}
	if r := find(results, store.ClassRawEvidence, "kyc-eu"); r.Due != 0 || !r.Period.Kept() {
		t.Errorf("dry run kyc-eu raw_evidence = %+v, want kept", r)
	}
	if _, err := os.Stat(blob("verifications/old/document_front")); err != nil {
		t.Errorf("dry run deleted a blob: %v", err)
	}
	seq, _, _ := st.AuditHead(ctx)

	results, err = job.Run(ctx, now, false)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if r := find(results, store.ClassRawEvidence, "kyc-default"); r.Due != 2 || r.Deleted != 2 {
		t.Errorf("run raw_evidence = %+v, want 2 due, 2 deleted", r)
	}
	for key, gone := range map[string]bool{
		"verifications/old/document_front": true, "verifications/new/document_front": false,
		"verifications/new/selfie": false, "verifications/eu/selfie": false,
	} {
		_, err := os.Stat(blob(key))
		if gone != errors.Is(err, os.ErrNotExist) {
			t.Errorf("blob %s: %v, want gone %v", key, err, gone)
		}
	}
	old, err := st.GetVerification(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range old.Evidence {
		if e.State != store.EvidenceDeleted || e.SHA256 == "" || e.ID == "" {
			t.Errorf("pointer after retention: %+v", e)
		}
	}
	for _, id := range []string{"new", "eu"} {
		v, _ := st.GetVerification(ctx, id)
		for _, e := range v.Evidence {
			if e.State != store.EvidenceUploaded {
				t.Errorf("%s: pointer %s changed: %s", id, e.ID, e.State)
			}
		}
	}
	evs, _ := st.AuditEvents(ctx, seq, 100)
	if len(evs) != 2 { // batch size 1: one event per pointer
		t.Errorf("events = %d, want 2", len(evs))
	}
	for _, e := range evs {
		if e.Type != store.EventRetentionDeleted || strings.Contains(string(e.Payload), "user-") {
			t.Errorf("event %s %s", e.Type, e.Payload)
		}
	}
	if _, _, err := store.VerifyChain(ctx, st); err != nil {
		t.Errorf("VerifyChain: %v", err)
	}
	again, err := job.Run(ctx, now, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range again {
		if r.Due != 0 || r.Deleted != 0 {
			t.Errorf("second run: %+v", r)
		}
	}
}

type failingBlobs struct{}

func (failingBlobs) Delete(context.Context, string) error { return errors.New("bucket unreachable") }

func TestJobLeavesPointersWhenBlobsCannotBeDeleted(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ps, _ := retention.Parse("p.yaml", []byte(policyFile))
	now := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	at := now.Add(-200 * 24 * time.Hour)
	v := store.Verification{ID: "v1", UserID: "u1", Provider: "sandbox", Status: store.StatusApproved, CreatedAt: at, UpdatedAt: at,
		Evidence: []store.Evidence{{ID: "e1", Kind: "selfie", BlobKey: "k1", SHA256: strings.Repeat("b", 64), State: store.EvidenceUploaded, CreatedAt: at}}}
	if _, _, err := st.CreateVerification(ctx, store.NewVerification{Verification: v, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	_, err = (&retention.Job{Store: st, Blobs: failingBlobs{}, Policies: ps}).Run(ctx, now, false)
	if err == nil || !strings.Contains(err.Error(), "bucket unreachable") {
		t.Fatalf("Run = %v, want the bucket's error", err)
	}
	got, _ := st.GetVerification(ctx, "v1")
	if got.Evidence[0].State != store.EvidenceUploaded {
		t.Errorf("pointer marked deleted although its blob is still there")
	}
}

// Sessions naming a policy the file does not define are reported, not deleted.
func TestJobReportsUndefinedPolicies(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ps, err := retention.Parse("p.yaml", []byte(policyFile))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, policy := range []string{"", "kyc-default", "kyc-br", "kyc-br", "kyc-eu"} {
		v := store.Verification{ID: "v" + string(rune('a'+i)), UserID: "u", Provider: "sandbox", Status: store.StatusApproved,
			RetentionPolicy: policy, CreatedAt: at, UpdatedAt: at}
		if _, _, err := st.CreateVerification(ctx, store.NewVerification{Verification: v, Actor: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	job := &retention.Job{Store: st, Policies: ps}
	undefined, err := job.Undefined(ctx)
	if err != nil || len(undefined) != 1 || undefined["kyc-br"] != 2 {
		t.Fatalf("Undefined = %v, %v; want kyc-br: 2", undefined, err)
	}
	if _, err := job.Run(ctx, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), false); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"vc", "vd"} {
		if _, err := st.GetVerification(ctx, id); err != nil {
			t.Errorf("session %s under an undefined policy was deleted: %v", id, err)
		}
	}
	if _, err := st.GetVerification(ctx, "va"); err == nil {
		t.Errorf("session under the default policy, 7 years old, was kept")
	}
}
