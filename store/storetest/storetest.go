// Package storetest is the conformance suite every store.Store implementation passes, so
// that the embedded and the Postgres store are interchangeable. A store's own tests call
// Run with a function that opens a new, empty store.
package storetest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/verdict-engine/verdict/store"
)

// Option configures Run.
type Option func(*config)

type config struct {
	reopen func(t *testing.T, prev store.Store) store.Store
}

// WithReopen enables the persistence test: reopen must open the storage prev used (same
// directory, same schema) after the suite has closed prev. A store for production use must
// provide it; without it the persistence test is skipped, saying so.
func WithReopen(reopen func(t *testing.T, prev store.Store) store.Store) Option {
	return func(c *config) { c.reopen = reopen }
}

// Run runs the conformance suite. open must return a new, empty store, and arrange with
// t.Cleanup for it to be closed (Close must tolerate being called twice). The subtests run
// in parallel, each on its own store.
func Run(t *testing.T, open func(t *testing.T) store.Store, opts ...Option) {
	var c config
	for _, o := range opts {
		o(&c)
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"DecisionRoundTrip", testDecisionRoundTrip},
		{"DecisionNotFound", testDecisionNotFound},
		{"Idempotency", testIdempotency},
		{"InvalidRecordInBatch", testInvalidRecordInBatch},
		{"CancelledWriteWritesNothing", testCancelledWrite},
		{"Lists", testLists},
		{"LatestVerification", testLatestVerification},
		{"CreateVerification", testCreateVerification},
		{"ConcurrentCreateVerification", testConcurrentCreateVerification},
		{"ConcurrentEventKey", testConcurrentEventKey},
		{"IllegalTransitionWritesNothing", testIllegalTransition},
		{"UpdateErrorWritesNothing", testUpdateError},
		{"EvidenceAndConsentEvents", testEvidenceAndConsentEvents},
		{"RawPayloadRoundTrip", testRawPayload},
		{"ExpireVerifications", testExpireVerifications},
		{"ReviewQueue", testReviewQueue},
		{"ReviewClaims", testReviewClaims},
		{"AppendAudit", testAppendAudit},
		{"PolicyPublish", testPolicyPublish},
		{"PolicyActivation", testPolicyActivation},
		{"PolicyRollbackAfterLateApproval", testPolicyRollbackAfterLateApproval},
		{"PolicyRollbackThroughARepeatedVersion", testPolicyRollbackThroughARepeatedVersion},
		{"PolicyShadow", testPolicyShadow},
		{"ShadowAgreement", testShadowAgreement},
		{"AuditChainAfterMixedWrites", testAuditChain},
		{"AuditHoldsNoRawIdentifiers", testAuditNoRawIdentifiers},
		{"ConcurrentGroupCommit", testConcurrentGroupCommit},
		{"LabelsRoundTrip", testLabelsRoundTrip},
		{"LabelsReplaceTags", testLabelsReplaceTags},
		{"LabelsUnknownDecisionWritesNothing", testLabelsUnknownDecision},
		{"LabelsInvalid", testLabelsInvalid},
		{"LabelsImport", testLabelsImport},
		{"LabelsAudited", testLabelsAudit},
		{"ScanDecisions", testScanDecisions},
		{"Retention", testRetention},
		{"SubjectKeys", testSubjectKeys},
		{"SampleSubjectKeys", testSampleSubjectKeys},
		{"ClaimKeyCheck", testClaimKeyCheck},
		{"EraseSubject", testEraseSubject},
		{"MarkSubjectEvidenceDeleted", testMarkSubjectEvidenceDeleted},
		{"NewSubjectKeyWithDecision", testNewSubjectKeyWithDecision},
		{"LabelsPersistAcrossReopen", func(t *testing.T, s store.Store) { testLabelsPersistence(t, s, c.reopen) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
	t.Run("PersistenceAcrossReopen", func(t *testing.T) {
		t.Parallel()
		if c.reopen == nil {
			t.Skip("the store under test provides no storetest.WithReopen hook")
		}
		testPersistence(t, open(t), c.reopen)
	})
}

// baseTime is a fixed time with sub-microsecond digits and a non-UTC zone, to check that
// stores return times in UTC truncated to the microsecond.
func baseTime() time.Time {
	return time.Date(2026, 5, 1, 14, 30, 0, 123456789, time.FixedZone("CEST", 2*3600))
}

// decision returns a valid record whose fields all differ by n.
func decision(prefix string, n int) store.DecisionRecord {
	return store.DecisionRecord{
		ID:            fmt.Sprintf("%s-%04d", prefix, n),
		Action:        "login",
		SubjectID:     fmt.Sprintf("user-%d", n),
		Outcome:       "approve",
		Score:         float64(n%100) + 0.25,
		ReasonCodes:   []string{"NEW_DEVICE", "VELOCITY_USER_1H"},
		PolicyVersion: "login-v3",
		PolicyHash:    "sha256:policy",
		Input:         json.RawMessage(fmt.Sprintf(`{"user":{"id":"user-%d"},"n":%d}`, n, n)),
		Response:      json.RawMessage(fmt.Sprintf(`{"outcome":"approve","n":%d}`, n)),
		RequestHash:   fmt.Sprintf("req-hash-%d", n),
		CreatedAt:     baseTime().Add(time.Duration(n) * time.Second),
		Actor:         "key_test",
		CorrelationID: fmt.Sprintf("req-%d", n),
	}
}

// normalized is what a store returns for rec: times in UTC to the microsecond.
func normalized(rec store.DecisionRecord) store.DecisionRecord {
	rec.CreatedAt = rec.CreatedAt.UTC().Truncate(time.Microsecond)
	return rec
}

func write(t *testing.T, s store.Store, recs ...store.DecisionRecord) []error {
	t.Helper()
	results, err := s.WriteDecisions(t.Context(), recs)
	if err != nil {
		t.Fatalf("WriteDecisions: %v", err)
	}
	if len(results) != len(recs) {
		t.Fatalf("WriteDecisions returned %d results for %d records", len(results), len(recs))
	}
	return results
}

func mustWrite(t *testing.T, s store.Store, recs ...store.DecisionRecord) {
	t.Helper()
	for i, err := range write(t, s, recs...) {
		if err != nil {
			t.Fatalf("WriteDecisions: record %s: %v", recs[i].ID, err)
		}
	}
}

func allEvents(t *testing.T, s store.Store) []store.AuditEvent {
	t.Helper()
	evs, err := s.AuditEvents(t.Context(), 0, 1_000_000)
	if err != nil {
		t.Fatalf("AuditEvents: %v", err)
	}
	return evs
}

func verifyChain(t *testing.T, s store.Store) (int64, []byte) {
	t.Helper()
	seq, head, err := store.VerifyChain(t.Context(), s)
	if err != nil {
		t.Fatalf("VerifyChain: %v", err)
	}
	hs, hh, err := s.AuditHead(t.Context())
	if err != nil {
		t.Fatalf("AuditHead: %v", err)
	}
	if hs != seq || !bytes.Equal(hh, head) {
		t.Fatalf("AuditHead = (%d, %x), VerifyChain = (%d, %x)", hs, hh, seq, head)
	}
	return seq, head
}

func testDecisionRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	// Inputs whose bytes a JSON-normalizing column would change: whitespace, key order,
	// number spellings, escapes, big integers.
	odd := decision("rt", 1)
	odd.Input = json.RawMessage("{\n  \"z\": 1.50,\n  \"a\": [1e2, -0.0, 12345678901234567890],\n  \"s\": \"Zo\\u00eb \u2713 <&>\", \"dup\": 1, \"dup\": 2\n}")
	odd.Response = json.RawMessage(`  {"outcome" : "block", "reasons":[{"code":"IP_DENIED"}]}  `)
	odd.Outcome = "block"
	odd.FailMode = "closed"
	odd.IdempotencyKey = "idem-rt-1"
	odd.SubjectID = "Zoë@example.com"
	bare := decision("rt", 2)
	bare.ReasonCodes = nil
	bare.Score = 0
	recs := []store.DecisionRecord{odd, bare, decision("rt", 3)}
	mustWrite(t, s, recs...)

	for _, want := range recs {
		got, err := s.GetDecision(ctx, want.ID)
		if err != nil {
			t.Fatalf("GetDecision(%s): %v", want.ID, err)
		}
		if diff := cmp.Diff(normalized(want), got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("GetDecision(%s) (-want +got):\n%s", want.ID, diff)
		}
		if got.CreatedAt.Location() != time.UTC {
			t.Errorf("GetDecision(%s).CreatedAt in %v, want UTC", want.ID, got.CreatedAt.Location())
		}
	}

	// The audit chain commits to the input and response exactly as stored.
	evs := allEvents(t, s)
	if len(evs) != len(recs) {
		t.Fatalf("%d audit events, want %d", len(evs), len(recs))
	}
	for i, ev := range evs {
		var p struct {
			DecisionID     string `json:"decision_id"`
			InputSHA256    string `json:"input_sha256"`
			ResponseSHA256 string `json:"response_sha256"`
		}
		if err := json.Unmarshal(ev.Payload, &p); err != nil {
			t.Fatalf("audit payload: %v", err)
		}
		got, err := s.GetDecision(ctx, p.DecisionID)
		if err != nil {
			t.Fatalf("GetDecision(%s) from audit event: %v", p.DecisionID, err)
		}
		if p.DecisionID != recs[i].ID || p.InputSHA256 != sha256Hex(got.Input) || p.ResponseSHA256 != sha256Hex(got.Response) {
			t.Errorf("audit event %d does not match stored decision %s: %s", ev.Seq, got.ID, ev.Payload)
		}
		if ev.Type != store.EventDecisionCreated {
			t.Errorf("audit event type = %q, want %q", ev.Type, store.EventDecisionCreated)
		}
	}

	// A zero CreatedAt is filled in by the store, not in the caller's records.
	unset := decision("rt", 4)
	unset.CreatedAt = time.Time{}
	batch := []store.DecisionRecord{unset}
	if results, err := s.WriteDecisions(ctx, batch); err != nil || results[0] != nil {
		t.Fatalf("WriteDecisions = %v, %v", results, err)
	}
	if !batch[0].CreatedAt.IsZero() {
		t.Errorf("WriteDecisions modified the caller's record: CreatedAt = %v", batch[0].CreatedAt)
	}
	got, err := s.GetDecision(ctx, unset.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.CreatedAt.IsZero() {
		t.Errorf("CreatedAt left zero, want the store's clock")
	}
}

func testDecisionNotFound(t *testing.T, s store.Store) {
	if _, err := s.GetDecision(t.Context(), "no-such-decision"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetDecision = %v, want ErrNotFound", err)
	}
	if _, err := s.LookupIdempotency(t.Context(), "no-such-key"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LookupIdempotency = %v, want ErrNotFound", err)
	}
	results, err := s.WriteDecisions(t.Context(), nil)
	if err != nil || len(results) != 0 {
		t.Errorf("WriteDecisions(nil) = %v, %v; want no results, nil", results, err)
	}
}

func testIdempotency(t *testing.T, s store.Store) {
	ctx := t.Context()
	withKey := func(n int, key string) store.DecisionRecord {
		r := decision("idem", n)
		r.IdempotencyKey = key
		return r
	}
	a := withKey(1, "k1")
	mustWrite(t, s, a)

	b, c, d, e := withKey(2, "k1"), withKey(3, "k2"), withKey(4, "k2"), decision("idem", 5)
	got := write(t, s, b, c, d, e)
	want := []error{store.ErrDuplicateIdempotencyKey, nil, store.ErrDuplicateIdempotencyKey, nil}
	for i := range want {
		if !errors.Is(got[i], want[i]) || (want[i] == nil) != (got[i] == nil) {
			t.Errorf("result %d = %v, want %v", i, got[i], want[i])
		}
	}
	for _, r := range []store.DecisionRecord{b, d} {
		if _, err := s.GetDecision(ctx, r.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("duplicate %s was stored: GetDecision = %v", r.ID, err)
		}
	}
	for _, r := range []store.DecisionRecord{a, c, e} {
		if _, err := s.GetDecision(ctx, r.ID); err != nil {
			t.Errorf("GetDecision(%s) = %v", r.ID, err)
		}
	}
	for key, r := range map[string]store.DecisionRecord{"k1": a, "k2": c} {
		idem, err := s.LookupIdempotency(ctx, key)
		if err != nil {
			t.Fatalf("LookupIdempotency(%s): %v", key, err)
		}
		if want := (store.Idempotency{Key: key, RequestHash: r.RequestHash, DecisionID: r.ID}); idem != want {
			t.Errorf("LookupIdempotency(%s) = %+v, want %+v", key, idem, want)
		}
	}
	var ids []string
	for _, ev := range allEvents(t, s) {
		var p struct {
			DecisionID string `json:"decision_id"`
		}
		_ = json.Unmarshal(ev.Payload, &p)
		ids = append(ids, p.DecisionID)
	}
	if want := []string{a.ID, c.ID, e.ID}; !slices.Equal(ids, want) {
		t.Errorf("audited decisions = %v, want %v (no event for duplicates)", ids, want)
	}
	verifyChain(t, s)
}

func testInvalidRecordInBatch(t *testing.T, s store.Store) {
	bad := decision("inv", 2)
	bad.Input = json.RawMessage(`{"unterminated":`)
	nul := decision("inv", 3)
	nul.SubjectID = "a\x00b"
	got := write(t, s, decision("inv", 1), bad, nul, decision("inv", 4))
	if got[0] != nil || got[3] != nil || !errors.Is(got[1], store.ErrInvalidRecord) || !errors.Is(got[2], store.ErrInvalidRecord) {
		t.Errorf("results = %v, want [nil, ErrInvalidRecord, ErrInvalidRecord, nil]", got)
	}
	if _, err := s.GetDecision(t.Context(), "inv-0004"); err != nil {
		t.Errorf("valid record after invalid ones: %v", err)
	}
	if seq, _ := verifyChain(t, s); seq != 2 {
		t.Errorf("audit head at %d, want 2", seq)
	}
}

func testCancelledWrite(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.WriteDecisions(ctx, []store.DecisionRecord{decision("cx", 1)}); err == nil {
		t.Fatalf("WriteDecisions with a cancelled context succeeded")
	}
	if _, err := s.GetDecision(t.Context(), "cx-0001"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after a failed write, GetDecision = %v, want ErrNotFound", err)
	}
	verifyChain(t, s)
}

func testLists(t *testing.T, s store.Store) {
	ctx := t.Context()
	version := func() int64 {
		t.Helper()
		v, err := s.ListsVersion(ctx)
		if err != nil {
			t.Fatalf("ListsVersion: %v", err)
		}
		return v
	}
	put := func(e store.ListEntry) bool {
		t.Helper()
		before := version()
		created, err := s.PutListEntry(ctx, e, "req-lists")
		if err != nil {
			t.Fatalf("PutListEntry(%s/%s): %v", e.List, e.Value, err)
		}
		if after := version(); after <= before {
			t.Errorf("ListsVersion %d -> %d after a put, want an increase", before, after)
		}
		return created
	}

	at := baseTime().UTC().Truncate(time.Microsecond)
	ip := store.ListEntry{List: "deny_ip", Value: "203.0.113.7", Reason: "chargebacks", CreatedAt: at, Actor: "analyst-1"}
	if !put(ip) {
		t.Errorf("first put reported created=false")
	}
	ip.Reason, ip.Actor, ip.CreatedAt = "fraud ring", "analyst-2", at.Add(time.Hour)
	if put(ip) {
		t.Errorf("replacing put reported created=true")
	}
	got, err := s.ListEntries(ctx, "deny_ip")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]store.ListEntry{ip}, got); diff != "" {
		t.Errorf("ListEntries after replace (-want +got):\n%s", diff)
	}

	values := []string{"b", "B", "a", "ä", "a b", "10", "9", "Z"}
	for i, v := range values {
		put(store.ListEntry{List: "deny_user", Value: v, CreatedAt: at.Add(time.Duration(i) * time.Second), Actor: "a"})
	}
	got, err = s.ListEntries(ctx, "deny_user")
	if err != nil {
		t.Fatal(err)
	}
	sorted := slices.Clone(values)
	slices.Sort(sorted) // bytewise
	var gotValues []string
	for _, e := range got {
		gotValues = append(gotValues, e.Value)
	}
	if !slices.Equal(gotValues, sorted) {
		t.Errorf("ListEntries order = %q, want bytewise %q", gotValues, sorted)
	}

	all, err := s.AllListEntries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(values)+1 || all[0].List != "deny_ip" || !slices.IsSortedFunc(all, func(a, b store.ListEntry) int {
		return strings.Compare(a.List+"\x00"+a.Value, b.List+"\x00"+b.Value)
	}) {
		t.Errorf("AllListEntries = %+v, want %d entries ordered by list, value", all, len(values)+1)
	}

	before := version()
	if err := s.DeleteListEntry(ctx, "deny_user", "ä", "analyst-1", "req-del"); err != nil {
		t.Fatalf("DeleteListEntry: %v", err)
	}
	if after := version(); after <= before {
		t.Errorf("ListsVersion %d -> %d after a delete, want an increase", before, after)
	}
	before = version()
	if err := s.DeleteListEntry(ctx, "deny_user", "ä", "analyst-1", "req-del"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteListEntry = %v, want ErrNotFound", err)
	}
	if after := version(); after != before {
		t.Errorf("ListsVersion %d -> %d after a failed delete, want unchanged", before, after)
	}
	if got, err := s.ListEntries(ctx, "no_such_list"); err != nil || len(got) != 0 {
		t.Errorf("ListEntries(unknown) = %v, %v; want empty", got, err)
	}
	if _, err := s.PutListEntry(ctx, store.ListEntry{List: "deny_ip"}, ""); !errors.Is(err, store.ErrInvalidRecord) {
		t.Errorf("PutListEntry without value = %v, want ErrInvalidRecord", err)
	}

	// Every change was audited: 2 + 8 puts, 1 delete.
	evs := allEvents(t, s)
	var puts, deletes int
	for _, ev := range evs {
		switch ev.Type {
		case store.EventListEntryPut:
			puts++
		case store.EventListEntryDeleted:
			deletes++
		}
	}
	if puts != 2+len(values) || deletes != 1 {
		t.Errorf("audited %d puts and %d deletes, want %d and 1", puts, deletes, 2+len(values))
	}
	verifyChain(t, s)
}

func testAuditChain(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustWrite(t, s, decision("mix", 1), decision("mix", 2))
	if _, err := s.PutListEntry(ctx, store.ListEntry{List: "deny_email", Value: "x@example.com", Actor: "a"}, "req-a"); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, store.Verification{ID: "v", UserID: "u", Status: "approved"})
	mustWrite(t, s, decision("mix", 3))
	if err := s.DeleteListEntry(ctx, "deny_email", "x@example.com", "a", "req-b"); err != nil {
		t.Fatal(err)
	}

	seq, head := verifyChain(t, s)
	if seq != 6 {
		t.Fatalf("audit head at seq %d, want 6", seq)
	}
	evs := allEvents(t, s)
	var types []string
	for i, ev := range evs {
		types = append(types, ev.Type)
		if ev.Seq != int64(i+1) {
			t.Errorf("event %d has seq %d", i, ev.Seq)
		}
		if ev.Time.IsZero() || ev.Time.Location() != time.UTC {
			t.Errorf("event %d time = %v, want a UTC time", ev.Seq, ev.Time)
		}
		if i == 0 && ev.PrevHash != nil {
			t.Errorf("first event's PrevHash = %x, want nil", ev.PrevHash)
		}
	}
	wantTypes := []string{store.EventDecisionCreated, store.EventDecisionCreated, store.EventListEntryPut,
		store.EventVerificationStatusChanged, store.EventDecisionCreated, store.EventListEntryDeleted}
	if !slices.Equal(types, wantTypes) {
		t.Errorf("event types = %q, want %q", types, wantTypes)
	}

	page, err := s.AuditEvents(ctx, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(evs[2:5], page); diff != "" {
		t.Errorf("AuditEvents(after 2, limit 3) (-want +got):\n%s", diff)
	}
	if page, err := s.AuditEvents(ctx, 6, 10); err != nil || len(page) != 0 {
		t.Errorf("AuditEvents past the head = %v, %v; want none", page, err)
	}
	if page, err := s.AuditEvents(ctx, 0, 0); err != nil || len(page) != 0 {
		t.Errorf("AuditEvents(limit 0) = %v, %v; want none", page, err)
	}

	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	cp := store.SignCheckpoint(priv, seq, head, time.Now())
	mustWrite(t, s, decision("mix", 4))
	if err := store.VerifyCheckpoint(ctx, pub, cp, s); err != nil {
		t.Errorf("VerifyCheckpoint after further writes: %v", err)
	}
	verifyChain(t, s)
}

func testAuditNoRawIdentifiers(t *testing.T, s store.Store) {
	ctx := t.Context()
	const (
		subject     = "alice.secret@example.com"
		listValue   = "198.51.100.23"
		userID      = "user-secret-4242"
		providerRef = "applicant-secret-991"
	)
	rec := decision("pii", 1)
	rec.SubjectID = subject
	rec.Input = json.RawMessage(`{"user":{"email":"alice.secret@example.com","ip":"198.51.100.23"}}`)
	mustWrite(t, s, rec)
	if _, err := s.PutListEntry(ctx, store.ListEntry{List: "deny_ip", Value: listValue, Reason: "abuse", Actor: "a"}, "req"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteListEntry(ctx, "deny_ip", listValue, "a", "req"); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, store.Verification{ID: "ver-pii", UserID: userID, Provider: "onfido", ProviderRef: providerRef,
		Status: store.StatusApproved})
	if got := allEvents(t, s); len(got) != 4 || got[0].SubjectRef != store.SubjectRef(subject) ||
		got[1].SubjectRef != store.SubjectRef(listValue) || got[3].SubjectRef != store.SubjectRef(userID) {
		t.Errorf("subject refs do not match store.SubjectRef of the raw ids: %+v", got)
	}

	// Everything a verification session and the review queue write: evidence (whose blob
	// key names the user), consent, webhook changes, payloads, claims and resolutions.
	full := fullSession("ver-pii-2", userID, "veriff", providerRef+"-2")
	full.Evidence[0].BlobKey = "evidence/" + userID + "/front.jpg"
	full.Status = store.StatusSubmitted
	mustCreate(t, s, full)
	mustUpdate(t, s, "ver-pii-2", store.VerificationChange{EventKey: "veriff:evt-pii",
		Payload: &store.RawPayload{ID: "raw-pii", Provider: "veriff", Ciphertext: []byte(userID)}},
		func(v *store.Verification) error {
			v.Status = store.StatusPendingReview
			v.Evidence = append(v.Evidence, store.Evidence{ID: "ev-pii-3", Kind: "selfie", BlobKey: userID + "/selfie",
				SHA256: sha256Hex([]byte(userID)), State: store.EvidenceUploaded})
			return nil
		})
	review := decision("pii", 2)
	review.SubjectID, review.Outcome = subject, "review"
	mustWrite(t, s, review)
	until := time.Now().Add(time.Hour)
	for _, it := range []struct{ kind, id, outcome string }{
		{store.ReviewVerification, "ver-pii-2", store.StatusRejected},
		{store.ReviewDecision, review.ID, "block"},
	} {
		if _, err := s.ClaimReview(ctx, it.kind, it.id, "reviewer-1", until, "req-claim"); err != nil {
			t.Fatalf("ClaimReview(%s): %v", it.id, err)
		}
		if err := s.ResolveReview(ctx, store.ReviewResolution{Kind: it.kind, ID: it.id, Reviewer: "reviewer-1",
			Outcome: it.outcome, Reason: "DOCUMENT_FORGED", NoteSHA256: sha256Hex([]byte("note"))}); err != nil {
			t.Fatalf("ResolveReview(%s): %v", it.id, err)
		}
	}
	rejected, err := store.WebhookRejectedEvent("onfido", "bad_signature", []byte(`{"user":"`+userID+`"}`), "req-wh", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(ctx, rejected); err != nil {
		t.Fatal(err)
	}

	evs := allEvents(t, s)
	types := map[string]int{}
	for _, ev := range evs {
		types[ev.Type]++
		fields := strings.Join([]string{ev.Type, ev.Actor, ev.CorrelationID, ev.SubjectRef, string(ev.Payload)}, "\n")
		for _, raw := range []string{subject, listValue, userID, providerRef, "alice.secret", "user-secret"} {
			if strings.Contains(fields, raw) {
				t.Errorf("audit event %d (%s) contains %q:\n%s", ev.Seq, ev.Type, raw, fields)
			}
		}
		if ev.Type == store.EventWebhookRejected {
			if ev.SubjectRef != "" {
				t.Errorf("webhook.rejected subject_ref = %q, want none", ev.SubjectRef)
			}
		} else if !strings.HasPrefix(ev.SubjectRef, "sha256:") {
			t.Errorf("audit event %d (%s) subject_ref = %q, want a sha256: reference", ev.Seq, ev.Type, ev.SubjectRef)
		}
	}
	for _, typ := range []string{store.EventEvidenceAdded, store.EventEvidenceUploaded, store.EventConsentRecorded,
		store.EventReviewClaimed, store.EventReviewDecided, store.EventWebhookRejected} {
		if types[typ] == 0 {
			t.Errorf("no %s event was checked", typ)
		}
	}
	verifyChain(t, s)
}

func testConcurrentGroupCommit(t *testing.T, s store.Store) {
	ctx := t.Context()
	g := store.NewGroupCommitter(s, store.WithPipeline(2)) // overlapping batches must still chain correctly
	const n, contenders = 500, 20
	var (
		wg         sync.WaitGroup
		mu         sync.Mutex
		sharedWins int
		sharedDups int
	)
	for i := range n {
		wg.Go(func() {
			if err := g.Commit(ctx, decision("gc", i)); err != nil {
				t.Errorf("Commit(gc-%04d): %v", i, err)
			}
		})
	}
	// Contenders for one idempotency key, spread over batches: exactly one wins.
	for i := range contenders {
		wg.Go(func() {
			r := decision("shared", i)
			r.IdempotencyKey = "one-key"
			err := g.Commit(ctx, r)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				sharedWins++
			case errors.Is(err, store.ErrDuplicateIdempotencyKey):
				sharedDups++
			default:
				t.Errorf("Commit(shared-%d): %v", i, err)
			}
		})
	}
	wg.Wait()
	if err := g.Close(ctx); err != nil {
		t.Fatalf("close committer: %v", err)
	}
	if sharedWins != 1 || sharedDups != contenders-1 {
		t.Errorf("shared key: %d written, %d duplicates; want 1 and %d", sharedWins, sharedDups, contenders-1)
	}
	for i := range n {
		if _, err := s.GetDecision(ctx, fmt.Sprintf("gc-%04d", i)); err != nil {
			t.Fatalf("GetDecision(gc-%04d): %v", i, err)
		}
	}
	if seq, _ := verifyChain(t, s); seq != n+1 {
		t.Errorf("audit head at seq %d, want %d", seq, n+1)
	}
}

func testPersistence(t *testing.T, s store.Store, reopen func(t *testing.T, prev store.Store) store.Store) {
	ctx := t.Context()
	recs := []store.DecisionRecord{decision("p", 1), decision("p", 2)}
	recs[0].IdempotencyKey = "persist-key"
	mustWrite(t, s, recs...)
	entry := store.ListEntry{List: "deny_ip", Value: "192.0.2.1", Reason: "r", CreatedAt: baseTime().UTC().Truncate(time.Microsecond), Actor: "a"}
	if _, err := s.PutListEntry(ctx, entry, "req"); err != nil {
		t.Fatal(err)
	}
	ver := mustCreate(t, s, fullSession("ver-p", "user-p", "veriff", "sess-p"))
	ver = mustUpdate(t, s, "ver-p", store.VerificationChange{EventKey: "veriff:evt-p",
		Payload: &store.RawPayload{ID: "raw-p", Provider: "veriff", ReceivedAt: baseTime(), Ciphertext: []byte{0, 1, 2, 0xfe}}},
		func(v *store.Verification) error {
			v.Status = store.StatusPendingReview
			v.Evidence[0].State, v.Evidence[0].UploadedAt = store.EvidenceUploaded, baseTime().Add(time.Second)
			return nil
		})
	claimUntil := time.Now().Add(time.Hour)
	if _, err := s.ClaimReview(ctx, store.ReviewVerification, "ver-p", "alice", claimUntil, "req"); err != nil {
		t.Fatal(err)
	}
	queue, err := s.ListReviews(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	seq, head := verifyChain(t, s)
	version, err := s.ListsVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = reopen(t, s)
	for _, want := range recs {
		got, err := s.GetDecision(ctx, want.ID)
		if err != nil {
			t.Fatalf("after reopen, GetDecision(%s): %v", want.ID, err)
		}
		if diff := cmp.Diff(normalized(want), got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("after reopen, GetDecision(%s) (-want +got):\n%s", want.ID, diff)
		}
	}
	if _, err := s.LookupIdempotency(ctx, "persist-key"); err != nil {
		t.Errorf("after reopen, LookupIdempotency: %v", err)
	}
	if got, err := s.ListEntries(ctx, "deny_ip"); err != nil || !cmp.Equal([]store.ListEntry{entry}, got) {
		t.Errorf("after reopen, ListEntries = %+v, %v", got, err)
	}
	if v, err := s.ListsVersion(ctx); err != nil || v != version {
		t.Errorf("after reopen, ListsVersion = %d, %v; want %d", v, err, version)
	}
	if got, err := s.LatestVerification(ctx, "user-p"); err != nil || !cmp.Equal(ver, got, cmpopts.EquateEmpty()) {
		t.Errorf("after reopen, LatestVerification = %+v, %v; want %+v", got, err, ver)
	}
	if got, err := s.VerificationByProviderRef(ctx, "veriff", "sess-p"); err != nil || !cmp.Equal(ver, got, cmpopts.EquateEmpty()) {
		t.Errorf("after reopen, VerificationByProviderRef = %+v, %v; want %+v", got, err, ver)
	}
	if got, err := s.RawPayload(ctx, "raw-p"); err != nil || !bytes.Equal(got.Ciphertext, []byte{0, 1, 2, 0xfe}) ||
		!got.ReceivedAt.Equal(baseTime().Truncate(time.Microsecond)) {
		t.Errorf("after reopen, RawPayload = %+v, %v", got, err)
	}
	if got, err := s.ListReviews(ctx, 10); err != nil || !cmp.Equal(queue, got, cmpopts.EquateEmpty()) {
		t.Errorf("after reopen, ListReviews = %+v, %v; want %+v", got, err, queue)
	}
	if _, err := s.UpdateVerification(ctx, "ver-p", store.VerificationChange{EventKey: "veriff:evt-p"},
		func(*store.Verification) error { return nil }); !errors.Is(err, store.ErrAlreadyApplied) {
		t.Errorf("after reopen, a redelivered event = %v, want ErrAlreadyApplied", err)
	}
	if gotSeq, gotHead := verifyChain(t, s); gotSeq != seq || !bytes.Equal(gotHead, head) {
		t.Errorf("after reopen, chain head = (%d, %x), want (%d, %x)", gotSeq, gotHead, seq, head)
	}

	// The chain continues where it stopped.
	mustWrite(t, s, decision("p", 3))
	evs, err := s.AuditEvents(ctx, seq, 10)
	if err != nil || len(evs) != 1 {
		t.Fatalf("AuditEvents after reopen = %v, %v", evs, err)
	}
	if evs[0].Seq != seq+1 || !bytes.Equal(evs[0].PrevHash, head) {
		t.Errorf("first event after reopen: seq %d prev %x, want seq %d prev %x", evs[0].Seq, evs[0].PrevHash, seq+1, head)
	}
	verifyChain(t, s)
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
