package storetest

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/verdict-engine/verdict/store"
)

// testRetention seeds every retention class at several ages and under two policies,
// checks that the counts match, that deletion in batches removes exactly what is due (and
// what hangs off it) with one event per batch, that the chain verifies, and that a second
// run finds nothing.
func testRetention(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := baseTime().Add(1000 * 24 * time.Hour).UTC().Truncate(time.Microsecond)
	ago := func(days int) time.Time { return now.Add(-time.Duration(days) * 24 * time.Hour) }

	// Sessions: old-a (no policy: the default), mid-b (kyc-default), new-c (default),
	// eu-d (kyc-eu, old).
	mk := func(id, policy string, created time.Time, status string) store.Verification {
		v := fullSession(id, "user-"+id, "onfido", "")
		v.RetentionPolicy, v.CreatedAt, v.UpdatedAt, v.ExpiresAt, v.LastEventAt = policy, created, created, time.Time{}, time.Time{}
		v.Status = status
		return v
	}
	for _, v := range []store.Verification{
		mk("ret-old-a", "", ago(800), store.StatusPendingReview),
		mk("ret-mid-b", "kyc-default", ago(100), store.StatusApproved),
		mk("ret-new-c", "", ago(10), store.StatusApproved),
		mk("ret-eu-d", "kyc-eu", ago(800), store.StatusApproved),
	} {
		mustCreate(t, s, v)
	}
	if names, err := s.RetentionPolicyNames(ctx); err != nil || len(names) != 3 || names[""] != 2 || names["kyc-default"] != 1 || names["kyc-eu"] != 1 {
		t.Errorf("RetentionPolicyNames = %v, %v; want 2 unnamed, 1 kyc-default, 1 kyc-eu", names, err)
	}
	payload := func(vid, pid string, at time.Time) {
		t.Helper()
		mustUpdate(t, s, vid, store.VerificationChange{Actor: "onfido", Payload: &store.RawPayload{
			ID: pid, Provider: "onfido", ReceivedAt: at, Ciphertext: []byte("sealed-" + pid)}}, func(*store.Verification) error { return nil })
	}
	payload("ret-old-a", "pay-1", ago(800))
	payload("ret-mid-b", "pay-2", ago(40))
	payload("ret-mid-b", "pay-3", ago(10))
	payload("ret-new-c", "pay-4", ago(5))
	payload("ret-eu-d", "pay-5", ago(800))
	if _, err := s.ClaimReview(ctx, store.ReviewVerification, "ret-old-a", "rev-1", time.Now().Add(time.Hour), "req-claim"); err != nil {
		t.Fatalf("ClaimReview: %v", err)
	}
	if err := s.ResolveReview(ctx, store.ReviewResolution{Kind: store.ReviewVerification, ID: "ret-old-a", Reviewer: "rev-1",
		Outcome: store.StatusApproved, Reason: "DOCS_OK", NoteSHA256: sha256Hex([]byte("note")), CorrelationID: "req-res",
		DecidedAt: ago(800)}); err != nil {
		t.Fatalf("ResolveReview: %v", err)
	}

	// Decisions d1 (old, idempotency key), d2 (old), d3 (recent, key); labels at several ages.
	d1, d2, d3 := decision("ret", 1), decision("ret", 2), decision("ret", 3)
	d1.CreatedAt, d2.CreatedAt, d3.CreatedAt = ago(800), ago(799), ago(100)
	d1.IdempotencyKey, d3.IdempotencyKey = "ret-key-1", "ret-key-3"
	mustWrite(t, s, d1, d2, d3)
	mustPutLabels(t, s, 4,
		store.OutcomeLabel{DecisionID: d1.ID, Label: store.LabelFraud, CreatedAt: ago(790), Actor: "analyst"},
		store.OutcomeLabel{DecisionID: d2.ID, Label: store.LabelLegit, CreatedAt: ago(5), Actor: "analyst"},
		store.OutcomeLabel{DecisionID: d3.ID, Label: store.LabelFraud, CreatedAt: ago(90), Actor: "analyst"},
		store.OutcomeLabel{DecisionID: d3.ID, Label: store.LabelChargeback, CreatedAt: ago(10), Actor: "analyst"},
	)
	if err := s.WriteShadowResults(ctx, []store.ShadowResult{
		{DecisionID: d1.ID, Action: "login", Hash: "sha256:shadow", Outcome: "approve", ReasonCodes: []string{}, CreatedAt: ago(800)},
		{DecisionID: d3.ID, Action: "login", Hash: "sha256:shadow", Outcome: "approve", ReasonCodes: []string{}, CreatedAt: ago(100)},
	}); err != nil {
		t.Fatalf("WriteShadowResults: %v", err)
	}

	scope := func(class string, days int, limit int) store.RetentionScope {
		sc := store.RetentionScope{Class: class, Cutoff: ago(days), Limit: limit, Policy: "decisions", CorrelationID: "req-retention"}
		if store.IsSessionClass(class) {
			sc.Policy, sc.IncludeUnset = store.DefaultRetentionPolicy, true
		}
		return sc
	}
	plan := []struct {
		scope store.RetentionScope
		due   int // before any deletion
	}{
		{scope(store.ClassRawEvidence, 90, 4), 4}, // old-a's two, mid-b's two
		{scope(store.ClassRawPayloads, 30, 10), 2},
		{scope(store.ClassConsentRecords, 365, 10), 1},
		{scope(store.ClassReviewNotes, 365, 10), 1},
		{scope(store.ClassVerificationOutcomes, 730, 10), 0}, // old-a still has evidence
		{scope(store.ClassLabels, 60, 10), 2},
		{scope(store.ClassDecisions, 730, 1), 2},
	}
	count := func(sc store.RetentionScope) int {
		t.Helper()
		n, err := s.CountRetentionDue(ctx, sc)
		if err != nil {
			t.Fatalf("CountRetentionDue(%s): %v", sc.Class, err)
		}
		return n
	}
	for _, p := range plan {
		if got := count(p.scope); got != p.due {
			t.Errorf("dry run: %s due = %d, want %d", p.scope.Class, got, p.due)
		}
	}
	eu := scope(store.ClassRawEvidence, 90, 10)
	eu.Policy, eu.IncludeUnset = "kyc-eu", false
	if got := count(eu); got != 2 {
		t.Errorf("dry run: kyc-eu raw_evidence due = %d, want 2", got)
	}
	if _, err := s.DeleteRetentionDue(ctx, scope(store.ClassRawEvidence, 90, 10)); !errors.Is(err, store.ErrInvalidRecord) {
		t.Errorf("DeleteRetentionDue(raw_evidence) = %v, want ErrInvalidRecord", err)
	}
	if _, err := s.CountRetentionDue(ctx, scope("extracted_feelings", 1, 1)); !errors.Is(err, store.ErrInvalidRecord) {
		t.Errorf("CountRetentionDue(unknown class) = %v, want ErrInvalidRecord", err)
	}
	startSeq, _ := head(t, s)

	// Evidence first, in batches of 3: the store hands out blob keys, the caller deletes
	// the blobs, then marks the pointers.
	evScope := scope(store.ClassRawEvidence, 90, 3)
	var keys []string
	for {
		due, err := s.RetentionDueEvidence(ctx, evScope)
		if err != nil {
			t.Fatalf("RetentionDueEvidence: %v", err)
		}
		if len(due) == 0 {
			break
		}
		for _, d := range due {
			keys = append(keys, d.BlobKey)
		}
		n, err := s.MarkEvidenceDeleted(ctx, evScope, due)
		if err != nil || n != len(due) {
			t.Fatalf("MarkEvidenceDeleted(%d) = %d, %v", len(due), n, err)
		}
		if len(keys) > 10 {
			t.Fatalf("evidence deletion does not converge: %v", keys)
		}
	}
	if want := "evidence/ret-old-a/front evidence/ret-old-a/selfie evidence/ret-mid-b/front evidence/ret-mid-b/selfie"; strings.Join(keys, " ") != want {
		t.Errorf("blob keys handed out = %v, want %s", keys, want)
	}
	wantEvents := map[string][]int{store.ClassRawEvidence: {3, 1}}
	for _, p := range plan[1:] {
		for {
			n, err := s.DeleteRetentionDue(ctx, p.scope)
			if err != nil {
				t.Fatalf("DeleteRetentionDue(%s): %v", p.scope.Class, err)
			}
			if n == 0 {
				break
			}
			wantEvents[p.scope.Class] = append(wantEvents[p.scope.Class], n)
		}
	}
	for class, want := range map[string][]int{
		store.ClassRawPayloads: {2}, store.ClassConsentRecords: {1}, store.ClassReviewNotes: {1},
		store.ClassVerificationOutcomes: {1}, store.ClassLabels: {2}, store.ClassDecisions: {1, 1},
	} {
		if got := wantEvents[class]; len(got) != len(want) || (len(got) > 0 && got[0] != want[0]) {
			t.Errorf("%s batches = %v, want %v", class, got, want)
		}
	}

	// What is left.
	if _, err := s.GetVerification(ctx, "ret-old-a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ret-old-a after retention: %v, want ErrNotFound", err)
	}
	for id, want := range map[string]bool{"pay-1": false, "pay-2": false, "pay-3": true, "pay-4": true, "pay-5": true} {
		_, err := s.RawPayload(ctx, id)
		if (err == nil) != want {
			t.Errorf("RawPayload(%s) after retention: %v, want present %v", id, err, want)
		}
	}
	b := mustGet(t, s, "ret-mid-b")
	wantB := mk("ret-mid-b", "kyc-default", ago(100), store.StatusApproved)
	for i := range wantB.Evidence {
		wantB.Evidence[i].State = store.EvidenceDeleted
	}
	wantB = normalizedVerification(wantB)
	if !jsonEqual(b.Evidence, wantB.Evidence) || b.Consent == nil {
		t.Errorf("ret-mid-b evidence = %+v, want only the state changed (%+v); consent kept: %v", b.Evidence, wantB.Evidence, b.Consent != nil)
	}
	for _, id := range []string{"ret-new-c", "ret-eu-d"} {
		v := mustGet(t, s, id)
		if v.Consent == nil || len(v.Evidence) != 2 || v.Evidence[0].State == store.EvidenceDeleted || v.Evidence[1].State == store.EvidenceDeleted {
			t.Errorf("%s changed by retention: %+v", id, v)
		}
	}
	for id, want := range map[string]bool{d1.ID: false, d2.ID: false, d3.ID: true} {
		_, err := s.GetDecision(ctx, id)
		if (err == nil) != want {
			t.Errorf("GetDecision(%s) after retention: %v, want present %v", id, err, want)
		}
	}
	if _, err := s.LookupIdempotency(ctx, "ret-key-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("idempotency key of a deleted decision: %v, want ErrNotFound", err)
	}
	if _, err := s.LookupIdempotency(ctx, "ret-key-3"); err != nil {
		t.Errorf("idempotency key of a kept decision: %v", err)
	}
	if ls, err := s.DecisionLabels(ctx, d3.ID); err != nil || len(ls) != 1 || ls[0].Label != store.LabelChargeback {
		t.Errorf("labels of %s after retention = %+v, %v; want the chargeback only", d3.ID, ls, err)
	}
	if ls, err := s.DecisionLabels(ctx, d2.ID); err != nil || len(ls) != 0 {
		t.Errorf("labels of deleted %s = %+v, %v; want none", d2.ID, ls, err)
	}

	// One retention.deleted event per batch, ids and hashes only, and the chain verifies.
	evs, err := s.AuditEvents(ctx, startSeq, 100)
	if err != nil {
		t.Fatalf("AuditEvents: %v", err)
	}
	batches := 0
	for _, bs := range wantEvents {
		batches += len(bs)
	}
	if len(evs) != batches {
		t.Errorf("retention appended %d events, want %d (one per batch)", len(evs), batches)
	}
	perClass := map[string]int{}
	for _, ev := range evs {
		var p struct {
			Class, Policy, Cutoff string
			Count                 int
		}
		if err := json.Unmarshal(ev.Payload, &p); err != nil || ev.Type != store.EventRetentionDeleted || ev.SubjectRef != "" {
			t.Errorf("event %d: type %s subject %q payload %s (%v)", ev.Seq, ev.Type, ev.SubjectRef, ev.Payload, err)
			continue
		}
		if strings.Contains(string(ev.Payload), "user-") || strings.Contains(string(ev.Payload), "ret-") {
			t.Errorf("event %d names a record or person: %s", ev.Seq, ev.Payload)
		}
		if _, err := time.Parse(time.RFC3339Nano, p.Cutoff); err != nil || p.Policy == "" {
			t.Errorf("event %d: payload %s", ev.Seq, ev.Payload)
		}
		perClass[p.Class] += p.Count
	}
	for class, bs := range wantEvents {
		sum := 0
		for _, n := range bs {
			sum += n
		}
		if perClass[class] != sum {
			t.Errorf("events count %d %s, want %d", perClass[class], class, sum)
		}
	}
	if _, _, err := store.VerifyChain(ctx, s); err != nil {
		t.Errorf("VerifyChain after retention: %v", err)
	}

	// A second run finds and deletes nothing, and appends nothing.
	seq, _ := head(t, s)
	for _, p := range plan {
		if got := count(p.scope); got != 0 {
			t.Errorf("second run: %s due = %d", p.scope.Class, got)
		}
		if p.scope.Class == store.ClassRawEvidence {
			if due, err := s.RetentionDueEvidence(ctx, p.scope); err != nil || len(due) != 0 {
				t.Errorf("second run: evidence due %v, %v", due, err)
			}
			if n, err := s.MarkEvidenceDeleted(ctx, p.scope, []store.DueEvidence{{VerificationID: "ret-mid-b", EvidenceID: "ret-mid-b-front"}}); n != 0 || err != nil {
				t.Errorf("marking a deleted pointer again = %d, %v", n, err)
			}
			continue
		}
		if n, err := s.DeleteRetentionDue(ctx, p.scope); n != 0 || err != nil {
			t.Errorf("second run: DeleteRetentionDue(%s) = %d, %v", p.scope.Class, n, err)
		}
	}
	if after, _ := head(t, s); after != seq {
		t.Errorf("second run appended %d events", after-seq)
	}

	// A session whose evidence retention deleted can still change (a late webhook, a review).
	if _, err := s.UpdateVerification(ctx, "ret-mid-b", store.VerificationChange{Actor: "test", Reason: "LATE_EVENT"},
		func(v *store.Verification) error { v.ReasonCodes = []string{"LATE_EVENT"}; return nil }); err != nil {
		t.Errorf("UpdateVerification of a session with deleted evidence: %v", err)
	}
}

func jsonEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
