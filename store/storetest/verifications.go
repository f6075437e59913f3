package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/verdict-engine/verdict/store"
)

// fullSession returns a session with every field set, its times with sub-microsecond
// digits in a non-UTC zone.
func fullSession(id, userID, provider, ref string) store.Verification {
	at := baseTime()
	return store.Verification{
		ID: id, UserID: userID, Provider: provider, ProviderRef: ref,
		Status: store.StatusCapturing, Score: 12.5, ReasonCodes: []string{"DOC_GLARE"},
		Evidence: []store.Evidence{
			{ID: id + "-front", Kind: "document_front", BlobKey: "evidence/" + id + "/front", SHA256: sha256Hex([]byte("front")),
				ContentType: "image/jpeg", Size: 482113, State: store.EvidencePending, CreatedAt: at},
			{ID: id + "-selfie", Kind: "selfie", BlobKey: "evidence/" + id + "/selfie", SHA256: sha256Hex([]byte("selfie")),
				ContentType: "image/png", Size: 90210, State: store.EvidenceUploaded, CreatedAt: at, UploadedAt: at.Add(time.Minute)},
		},
		Consent: &store.Consent{PolicyHash: "sha256:consent-v3", Locale: "de-DE",
			Scope: []string{"identity_verification", "biometric_processing"}, GrantedAt: at.Add(-time.Minute)},
		RetentionPolicy: "kyc-5y",
		CreatedAt:       at,
		UpdatedAt:       at,
		ExpiresAt:       at.Add(24 * time.Hour),
		LastEventAt:     at.Add(-time.Second),
	}
}

// session returns a minimal session in status initiated.
func session(id, userID string) store.Verification {
	return store.Verification{ID: id, UserID: userID, Provider: "onfido", Status: store.StatusInitiated}
}

// utcMicros is what a store returns for t: UTC, to the microsecond; zero stays zero.
func utcMicros(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// normalizedVerification is what a store returns for v.
func normalizedVerification(v store.Verification) store.Verification {
	v.Evidence = slices.Clone(v.Evidence)
	for i := range v.Evidence {
		v.Evidence[i].CreatedAt, v.Evidence[i].UploadedAt = utcMicros(v.Evidence[i].CreatedAt), utcMicros(v.Evidence[i].UploadedAt)
	}
	if v.Consent != nil {
		c := *v.Consent
		c.GrantedAt = utcMicros(c.GrantedAt)
		v.Consent = &c
	}
	v.CreatedAt, v.UpdatedAt = utcMicros(v.CreatedAt), utcMicros(v.UpdatedAt)
	v.ExpiresAt, v.LastEventAt = utcMicros(v.ExpiresAt), utcMicros(v.LastEventAt)
	return v
}

func mustCreate(t *testing.T, s store.Store, v store.Verification) store.Verification {
	t.Helper()
	got, created, err := s.CreateVerification(t.Context(), store.NewVerification{Verification: v, Actor: "key_test", CorrelationID: "req-create"})
	if err != nil || !created {
		t.Fatalf("CreateVerification(%s) = created %v, %v", v.ID, created, err)
	}
	return got
}

func mustUpdate(t *testing.T, s store.Store, id string, ch store.VerificationChange, fn func(v *store.Verification) error) store.Verification {
	t.Helper()
	got, err := s.UpdateVerification(t.Context(), id, ch, fn)
	if err != nil {
		t.Fatalf("UpdateVerification(%s): %v", id, err)
	}
	return got
}

func mustGet(t *testing.T, s store.Store, id string) store.Verification {
	t.Helper()
	got, err := s.GetVerification(t.Context(), id)
	if err != nil {
		t.Fatalf("GetVerification(%s): %v", id, err)
	}
	return got
}

func head(t *testing.T, s store.Store) (int64, []byte) {
	t.Helper()
	seq, hash, err := s.AuditHead(t.Context())
	if err != nil {
		t.Fatalf("AuditHead: %v", err)
	}
	return seq, hash
}

// statusChange is the payload of a verification.status_changed event.
type statusChange struct {
	EventKey string `json:"event_key"`
	Previous string `json:"previous_status"`
	Reason   string `json:"reason"`
	Status   string `json:"status"`
	ID       string `json:"verification_id"`
}

// statusChanges returns the status events of session id (all sessions when id is ""),
// as "id:previous>status", and their payloads and events.
func statusChanges(t *testing.T, s store.Store, id string) ([]string, []statusChange, []store.AuditEvent) {
	t.Helper()
	var (
		out  []string
		ps   []statusChange
		evs2 []store.AuditEvent
	)
	for _, ev := range allEvents(t, s) {
		if ev.Type != store.EventVerificationStatusChanged {
			continue
		}
		var p statusChange
		if err := json.Unmarshal(ev.Payload, &p); err != nil {
			t.Fatalf("status event payload: %v", err)
		}
		if id != "" && p.ID != id {
			continue
		}
		out, ps, evs2 = append(out, p.ID+":"+p.Previous+">"+p.Status), append(ps, p), append(evs2, ev)
	}
	return out, ps, evs2
}

func countType(t *testing.T, s store.Store, typ string) int {
	t.Helper()
	n := 0
	for _, ev := range allEvents(t, s) {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

func testLatestVerification(t *testing.T, s store.Store) {
	ctx := t.Context()
	at := time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Microsecond)
	v1 := store.Verification{ID: "ver-1", UserID: "user-1", Provider: "onfido", ProviderRef: "chk-1", Status: "submitted",
		Score: 10, ReasonCodes: []string{"DOC_BLURRY"}, CreatedAt: at, UpdatedAt: at}
	v2 := store.Verification{ID: "ver-2", UserID: "user-1", Provider: "persona", ProviderRef: "inq-2", Status: "approved",
		Score: 95.5, CreatedAt: at.Add(time.Minute), UpdatedAt: at.Add(time.Hour)}
	other := store.Verification{ID: "ver-3", UserID: "user-2", Provider: "onfido", Status: "rejected",
		CreatedAt: at, UpdatedAt: at.Add(2 * time.Hour)}
	for _, v := range []store.Verification{v1, v2, other} {
		if got := mustCreate(t, s, v); !cmp.Equal(v, got, cmpopts.EquateEmpty()) {
			t.Errorf("CreateVerification returned %+v, want %+v", got, v)
		}
	}
	latest := func(user string) store.Verification {
		t.Helper()
		got, err := s.LatestVerification(ctx, user)
		if err != nil {
			t.Fatalf("LatestVerification(%s): %v", user, err)
		}
		return got
	}
	if diff := cmp.Diff(v2, latest("user-1"), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("LatestVerification (-want +got):\n%s", diff)
	}

	// v1 moves on: it is now the latest (UpdatedAt is the store's clock), keeps its creation
	// time, and the status change is audited; so is a change of its score within a status.
	before := time.Now().Add(-time.Second)
	mustUpdate(t, s, "ver-1", store.VerificationChange{Actor: "key_test"}, func(v *store.Verification) error {
		v.Status = store.StatusApproved
		return nil
	})
	want := mustUpdate(t, s, "ver-1", store.VerificationChange{}, func(v *store.Verification) error {
		v.Score = 99
		return nil
	})
	if want.Score != 99 || want.Status != store.StatusApproved || !want.CreatedAt.Equal(v1.CreatedAt) || want.UpdatedAt.Before(before) {
		t.Errorf("UpdateVerification returned %+v", want)
	}
	if diff := cmp.Diff(want, latest("user-1"), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("LatestVerification after update (-want +got):\n%s", diff)
	}
	if _, err := s.LatestVerification(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LatestVerification(unknown) = %v, want ErrNotFound", err)
	}

	// LatestVerifications answers as LatestVerification does, user by user, in one read.
	many, err := s.LatestVerifications(ctx, []string{"user-1", "nobody", "user-2", "user-1"})
	if err != nil {
		t.Fatalf("LatestVerifications: %v", err)
	}
	wantMany := map[string]store.Verification{"user-1": latest("user-1"), "user-2": latest("user-2")}
	if diff := cmp.Diff(wantMany, many, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("LatestVerifications (-want +got):\n%s", diff)
	}
	if none, err := s.LatestVerifications(ctx, nil); err != nil || len(none) != 0 {
		t.Errorf("LatestVerifications(nil) = %v, %v; want an empty map", none, err)
	}

	// ListVerifications: newest creation first.
	list, err := s.ListVerifications(ctx, "user-1", 10)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]store.Verification{v2, want}, list, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("ListVerifications (-want +got):\n%s", diff)
	}
	if list, err := s.ListVerifications(ctx, "user-1", 1); err != nil || len(list) != 1 || list[0].ID != "ver-2" {
		t.Errorf("ListVerifications(limit 1) = %+v, %v", list, err)
	}
	for _, tc := range []struct {
		user  string
		limit int
	}{{"nobody", 10}, {"user-1", 0}} {
		if list, err := s.ListVerifications(ctx, tc.user, tc.limit); err != nil || len(list) != 0 {
			t.Errorf("ListVerifications(%s, %d) = %+v, %v; want none", tc.user, tc.limit, list, err)
		}
	}

	changes, _, _ := statusChanges(t, s, "")
	// The score change within approved is audited too: previous_status equals status.
	wantChanges := []string{"ver-1:>submitted", "ver-2:>approved", "ver-3:>rejected", "ver-1:submitted>approved", "ver-1:approved>approved"}
	if !slices.Equal(changes, wantChanges) {
		t.Errorf("audited status changes = %q, want %q", changes, wantChanges)
	}
	verifyChain(t, s)
}

func testCreateVerification(t *testing.T, s store.Store) {
	ctx := t.Context()
	v := fullSession("ver-c1", "user-c", "onfido", "applicant-c")
	nv := store.NewVerification{Verification: v, IdempotencyKey: "ik-1", RequestHash: "h1", Actor: "key_1", CorrelationID: "req-1"}
	got, created, err := s.CreateVerification(ctx, nv)
	if err != nil || !created {
		t.Fatalf("CreateVerification = created %v, %v", created, err)
	}
	want := normalizedVerification(v)
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("CreateVerification returned (-want +got):\n%s", diff)
	}
	stored := mustGet(t, s, "ver-c1")
	if diff := cmp.Diff(want, stored, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("GetVerification (-want +got):\n%s", diff)
	}
	for name, at := range map[string]time.Time{"CreatedAt": stored.CreatedAt, "ExpiresAt": stored.ExpiresAt,
		"Evidence.CreatedAt": stored.Evidence[0].CreatedAt, "Consent.GrantedAt": stored.Consent.GrantedAt} {
		if at.Location() != time.UTC {
			t.Errorf("%s in %v, want UTC", name, at.Location())
		}
	}
	if byRef, err := s.VerificationByProviderRef(ctx, "onfido", "applicant-c"); err != nil || !cmp.Equal(want, byRef, cmpopts.EquateEmpty()) {
		t.Errorf("VerificationByProviderRef = %+v, %v", byRef, err)
	}
	// Zero optional times stay zero; zero creation and update times are the store's clock.
	bare, _, err := s.CreateVerification(ctx, store.NewVerification{Verification: session("ver-bare", "user-c")})
	if err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, "ver-bare"); !got.ExpiresAt.IsZero() || !got.LastEventAt.IsZero() || got.Consent != nil ||
		len(got.Evidence) != 0 || got.CreatedAt.IsZero() || !got.UpdatedAt.Equal(got.CreatedAt) || !cmp.Equal(bare, got, cmpopts.EquateEmpty()) {
		t.Errorf("bare session stored as %+v (returned %+v)", got, bare)
	}

	// Idempotency: a retry returns the first session; a different request is refused.
	retry := nv
	retry.Verification.ID = "ver-c2"
	if again, created, err := s.CreateVerification(ctx, retry); err != nil || created || again.ID != "ver-c1" {
		t.Errorf("retried CreateVerification = %s, created %v, %v; want ver-c1, false", again.ID, created, err)
	}
	retry.RequestHash = "h2"
	if _, _, err := s.CreateVerification(ctx, retry); !errors.Is(err, store.ErrDuplicateIdempotencyKey) {
		t.Errorf("CreateVerification with a reused key = %v, want ErrDuplicateIdempotencyKey", err)
	}
	if _, err := s.GetVerification(ctx, "ver-c2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetVerification(ver-c2) = %v, want ErrNotFound", err)
	}

	// Provider reference: one session per provider and reference.
	dup := session("ver-c3", "user-c")
	dup.ProviderRef = "applicant-c"
	if got, created, err := s.CreateVerification(ctx, store.NewVerification{Verification: dup}); err != nil || created || got.ID != "ver-c1" {
		t.Errorf("CreateVerification with a known reference = %s, created %v, %v; want ver-c1, false", got.ID, created, err)
	}
	// The key of a request answered with an existing session is bound to it.
	dup.ID = "ver-c4"
	for range 2 {
		if got, created, err := s.CreateVerification(ctx, store.NewVerification{Verification: dup, IdempotencyKey: "ik-2", RequestHash: "h"}); err != nil || created || got.ID != "ver-c1" {
			t.Errorf("CreateVerification(ik-2) = %s, created %v, %v; want ver-c1, false", got.ID, created, err)
		}
	}
	// The same session again (same id and reference): the reference wins over the id.
	if got, created, err := s.CreateVerification(ctx, store.NewVerification{Verification: v}); err != nil || created || got.ID != "ver-c1" {
		t.Errorf("CreateVerification repeated = %s, created %v, %v; want ver-c1, false", got.ID, created, err)
	}
	dup.ID, dup.Provider = "ver-c5", "persona"
	mustCreate(t, s, dup)
	for _, id := range []string{"ver-e1", "ver-e2"} { // no reference: no dedupe
		mustCreate(t, s, session(id, "user-c"))
	}
	for _, id := range []string{"ver-c3", "ver-c4"} {
		if _, err := s.GetVerification(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetVerification(%s) = %v, want ErrNotFound", id, err)
		}
	}
	if _, _, err := s.CreateVerification(ctx, store.NewVerification{Verification: session("ver-e1", "user-c")}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateVerification with a used id = %v, want ErrConflict", err)
	}

	// Records either store would refuse are refused by both.
	for name, mod := range map[string]func(v *store.Verification){
		"no user":           func(v *store.Verification) { v.UserID = "" },
		"unknown status":    func(v *store.Verification) { v.Status = "done" },
		"empty status":      func(v *store.Verification) { v.Status = "" },
		"NUL in evidence":   func(v *store.Verification) { v.Evidence[0].Kind = "a\x00b" },
		"evidence no id":    func(v *store.Verification) { v.Evidence[0].ID = "" },
		"evidence repeated": func(v *store.Verification) { v.Evidence[1].ID = v.Evidence[0].ID },
		"evidence state":    func(v *store.Verification) { v.Evidence[0].State = "lost" },
		"bad UTF-8 consent": func(v *store.Verification) { v.Consent.Locale = "\xff" },
		"NUL in retention":  func(v *store.Verification) { v.RetentionPolicy = "\x00" },
		"NaN score":         func(v *store.Verification) { v.Score = nanScore() },
	} {
		bad := fullSession("ver-bad", "user-c", "onfido", "")
		mod(&bad)
		if _, _, err := s.CreateVerification(ctx, store.NewVerification{Verification: bad}); !errors.Is(err, store.ErrInvalidRecord) {
			t.Errorf("CreateVerification(%s) = %v, want ErrInvalidRecord", name, err)
		}
	}

	for _, err := range []error{
		func() error { _, err := s.GetVerification(ctx, "nope"); return err }(),
		func() error { _, err := s.VerificationByProviderRef(ctx, "onfido", "nope"); return err }(),
		func() error { _, err := s.VerificationByProviderRef(ctx, "onfido", ""); return err }(),
	} {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("lookup of an unknown session = %v, want ErrNotFound", err)
		}
	}

	// ver-c1 (with consent and two evidence items, one uploaded), ver-bare, ver-c5, ver-e1
	// and ver-e2 were created; nothing else was audited.
	changes, ps, evs := statusChanges(t, s, "")
	if want := []string{"ver-c1:>capturing", "ver-bare:>initiated", "ver-c5:>initiated", "ver-e1:>initiated", "ver-e2:>initiated"}; !slices.Equal(changes, want) {
		t.Errorf("status events = %q, want %q", changes, want)
	}
	if evs[0].Actor != "key_1" || evs[0].CorrelationID != "req-1" || ps[0].EventKey != "" {
		t.Errorf("first status event = %+v, want actor key_1, correlation req-1", evs[0])
	}
	for typ, n := range map[string]int{store.EventConsentRecorded: 1, store.EventEvidenceAdded: 2, store.EventEvidenceUploaded: 1} {
		if got := countType(t, s, typ); got != n {
			t.Errorf("%d %s events, want %d", got, typ, n)
		}
	}
	verifyChain(t, s)
}

func nanScore() float64 {
	var zero float64
	return zero / zero
}

func testConcurrentCreateVerification(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 20
	type result struct {
		id      string
		created bool
		err     error
	}
	run := func(nv func(i int) store.NewVerification) []result {
		results := make([]result, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				v, created, err := s.CreateVerification(ctx, nv(i))
				results[i] = result{v.ID, created, err}
			})
		}
		wg.Wait()
		return results
	}
	check := func(name, user string, results []result) {
		t.Helper()
		created := 0
		for i, r := range results {
			if r.err != nil {
				t.Errorf("%s: CreateVerification %d: %v", name, i, r.err)
				continue
			}
			if r.created {
				created++
			}
			if r.id != results[0].id {
				t.Errorf("%s: CreateVerification %d returned %s, another returned %s", name, i, r.id, results[0].id)
			}
		}
		if created != 1 {
			t.Errorf("%s: %d creations reported, want 1", name, created)
		}
		if list, err := s.ListVerifications(ctx, user, 100); err != nil || len(list) != 1 {
			t.Errorf("%s: the user has %d sessions (%v), want 1", name, len(list), err)
		}
	}

	// Webhook placeholders for one vendor session arriving together.
	check("provider reference", "user-race", run(func(i int) store.NewVerification {
		v := session(fmt.Sprintf("ver-race-%02d", i), "user-race")
		v.ProviderRef = "applicant-race"
		return store.NewVerification{Verification: v, Actor: "onfido"}
	}))
	// One request retried in parallel.
	check("idempotency key", "user-race-2", run(func(i int) store.NewVerification {
		return store.NewVerification{Verification: session(fmt.Sprintf("ver-idem-%02d", i), "user-race-2"),
			IdempotencyKey: "race-key", RequestHash: "same"}
	}))
	if changes, _, _ := statusChanges(t, s, ""); len(changes) != 2 {
		t.Errorf("status events = %q, want one per session", changes)
	}
	verifyChain(t, s)
}

func testConcurrentEventKey(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreate(t, s, session("ver-wh", "user-wh"))
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ch := store.VerificationChange{CorrelationID: fmt.Sprintf("req-%d", i), EventKey: "onfido:evt-1",
				Payload: &store.RawPayload{ID: fmt.Sprintf("raw-%02d", i), Provider: "onfido", ReceivedAt: baseTime(),
					Ciphertext: []byte{0, byte(i), 0xff}}}
			_, errs[i] = s.UpdateVerification(ctx, "ver-wh", ch, func(v *store.Verification) error {
				v.Status, v.LastEventAt = store.StatusSubmitted, baseTime()
				return nil
			})
		})
	}
	wg.Wait()
	var applied, redelivered int
	for i, err := range errs {
		switch {
		case err == nil:
			applied++
		case errors.Is(err, store.ErrAlreadyApplied):
			redelivered++
		default:
			t.Errorf("UpdateVerification %d: %v", i, err)
		}
	}
	if applied != 1 || redelivered != n-1 {
		t.Errorf("%d applied, %d ErrAlreadyApplied; want 1 and %d", applied, redelivered, n-1)
	}
	stored := 0
	for i := range n {
		switch _, err := s.RawPayload(ctx, fmt.Sprintf("raw-%02d", i)); {
		case err == nil:
			stored++
		case !errors.Is(err, store.ErrNotFound):
			t.Errorf("RawPayload: %v", err)
		}
	}
	if stored != 1 {
		t.Errorf("%d raw payloads stored, want 1 (the applied delivery's)", stored)
	}
	changes, ps, evs := statusChanges(t, s, "ver-wh")
	if want := []string{"ver-wh:>initiated", "ver-wh:initiated>submitted"}; !slices.Equal(changes, want) {
		t.Fatalf("status events = %q, want %q", changes, want)
	}
	if ps[1].EventKey != "onfido:evt-1" || evs[1].Actor != "onfido" {
		t.Errorf("webhook status event = %+v (payload %+v), want event key onfido:evt-1 and the provider as actor", evs[1], ps[1])
	}
	if got := mustGet(t, s, "ver-wh"); !got.LastEventAt.Equal(utcMicros(baseTime())) || got.LastEventAt.Location() != time.UTC {
		t.Errorf("LastEventAt = %v, want %v in UTC", got.LastEventAt, baseTime())
	}
	// Another event applies.
	mustUpdate(t, s, "ver-wh", store.VerificationChange{EventKey: "onfido:evt-2"}, func(v *store.Verification) error {
		v.Status = store.StatusPendingReview
		return nil
	})
	verifyChain(t, s)
}

func testIllegalTransition(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreate(t, s, session("ver-ill", "user-ill"))
	mustUpdate(t, s, "ver-ill", store.VerificationChange{}, func(v *store.Verification) error {
		v.Status = store.StatusApproved
		return nil
	})
	before := mustGet(t, s, "ver-ill")
	seq0, head0 := head(t, s)
	unchanged := func(what string) {
		t.Helper()
		if got := mustGet(t, s, "ver-ill"); !cmp.Equal(before, got, cmpopts.EquateEmpty()) {
			t.Errorf("after %s, the session changed: %+v", what, got)
		}
		if seq, h := head(t, s); seq != seq0 || !bytes.Equal(h, head0) {
			t.Errorf("after %s, the audit head moved from %d to %d", what, seq0, seq)
		}
	}

	_, err := s.UpdateVerification(ctx, "ver-ill", store.VerificationChange{EventKey: "onfido:evt-ill",
		Payload: &store.RawPayload{ID: "raw-ill", Provider: "onfido", Ciphertext: []byte("x")}},
		func(v *store.Verification) error {
			v.Status, v.Score = store.StatusCapturing, 50
			return nil
		})
	var ite *store.IllegalTransitionError
	if !errors.As(err, &ite) || !errors.Is(err, store.ErrIllegalTransition) || ite.From != store.StatusApproved || ite.To != store.StatusCapturing {
		t.Fatalf("approved -> capturing = %v, want *IllegalTransitionError{approved, capturing}", err)
	}
	unchanged("an illegal transition")
	if _, err := s.RawPayload(ctx, "raw-ill"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the refused change's payload was stored: %v", err)
	}

	for name, fn := range map[string]func(v *store.Verification){
		"unknown status": func(v *store.Verification) { v.Status = "done" },
		"leave approved": func(v *store.Verification) { v.Status = store.StatusExpired },
	} {
		_, err := s.UpdateVerification(ctx, "ver-ill", store.VerificationChange{}, func(v *store.Verification) error { fn(v); return nil })
		if !errors.As(err, &ite) || !errors.Is(err, store.ErrIllegalTransition) {
			t.Errorf("%s: %v, want *IllegalTransitionError", name, err)
		}
	}
	for name, fn := range map[string]func(v *store.Verification){
		"id":           func(v *store.Verification) { v.ID = "ver-other" },
		"user id":      func(v *store.Verification) { v.UserID = "someone-else" },
		"provider":     func(v *store.Verification) { v.Provider = "persona" },
		"created at":   func(v *store.Verification) { v.CreatedAt = v.CreatedAt.Add(-time.Hour) },
		"bad evidence": func(v *store.Verification) { v.Evidence = []store.Evidence{{ID: "e", State: ""}} },
		"NUL in codes": func(v *store.Verification) { v.ReasonCodes = []string{"A\x00"} },
	} {
		_, err := s.UpdateVerification(ctx, "ver-ill", store.VerificationChange{}, func(v *store.Verification) error { fn(v); return nil })
		if !errors.Is(err, store.ErrInvalidRecord) {
			t.Errorf("changing %s: %v, want ErrInvalidRecord", name, err)
		}
	}
	unchanged("refused changes")
	if _, err := s.UpdateVerification(ctx, "nope", store.VerificationChange{}, func(*store.Verification) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateVerification(unknown) = %v, want ErrNotFound", err)
	}

	// The refused change's event key was not recorded: a legal change with it applies.
	got := mustUpdate(t, s, "ver-ill", store.VerificationChange{EventKey: "onfido:evt-ill"}, func(v *store.Verification) error {
		v.LastEventAt = baseTime()
		return nil
	})
	if got.Status != store.StatusApproved || !got.LastEventAt.Equal(utcMicros(baseTime())) {
		t.Errorf("after a legal change, session = %+v", got)
	}
	if seq, _ := head(t, s); seq != seq0 {
		t.Errorf("a change without a status change appended %d events", seq-seq0)
	}
	verifyChain(t, s)
}

func testUpdateError(t *testing.T, s store.Store) {
	ctx := t.Context()
	before := mustCreate(t, s, fullSession("ver-fn", "user-fn", "onfido", "ref-fn"))
	seq0, head0 := head(t, s)
	errBoom := errors.New("boom")
	_, err := s.UpdateVerification(ctx, "ver-fn", store.VerificationChange{EventKey: "onfido:evt-boom",
		Payload: &store.RawPayload{ID: "raw-boom", Provider: "onfido", Ciphertext: []byte("x")}},
		func(v *store.Verification) error {
			v.Status, v.Score, v.Consent = store.StatusSubmitted, 1, nil
			v.Evidence = append(v.Evidence, store.Evidence{ID: "e-new", State: store.EvidenceUploaded})
			return errBoom
		})
	if !errors.Is(err, errBoom) {
		t.Fatalf("UpdateVerification with a failing fn = %v, want its error", err)
	}
	if got := mustGet(t, s, "ver-fn"); !cmp.Equal(before, got, cmpopts.EquateEmpty()) {
		t.Errorf("after a failed fn, the session changed:\n%s", cmp.Diff(before, got, cmpopts.EquateEmpty()))
	}
	if seq, h := head(t, s); seq != seq0 || !bytes.Equal(h, head0) {
		t.Errorf("after a failed fn, the audit head moved from %d to %d", seq0, seq)
	}
	if _, err := s.RawPayload(ctx, "raw-boom"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after a failed fn, RawPayload = %v, want ErrNotFound", err)
	}
	// Nor was the event key recorded.
	mustUpdate(t, s, "ver-fn", store.VerificationChange{EventKey: "onfido:evt-boom"}, func(v *store.Verification) error {
		v.Status = store.StatusSubmitted
		return nil
	})
	// The caller's fn works on a copy: what it keeps after the call does not reach the store.
	var kept *store.Verification
	mustUpdate(t, s, "ver-fn", store.VerificationChange{}, func(v *store.Verification) error { kept = v; return nil })
	kept.Evidence[0].Kind, kept.ReasonCodes[0] = "changed", "CHANGED"
	if got := mustGet(t, s, "ver-fn"); got.Evidence[0].Kind == "changed" || got.ReasonCodes[0] == "CHANGED" {
		t.Errorf("the store shares memory with fn's argument")
	}
	verifyChain(t, s)
}

func testEvidenceAndConsentEvents(t *testing.T, s store.Store) {
	created := mustCreate(t, s, session("ver-ev", "user-ev"))
	seq0, _ := head(t, s)
	at := baseTime()
	front := store.Evidence{ID: "ev-front", Kind: "document_front", BlobKey: "b/front", SHA256: sha256Hex([]byte("f")),
		ContentType: "image/jpeg", Size: 10, State: store.EvidencePending, CreatedAt: at}
	ch := store.VerificationChange{Actor: "key_2", CorrelationID: "req-ev"}
	u1 := mustUpdate(t, s, "ver-ev", ch, func(v *store.Verification) error {
		v.Status = store.StatusCapturing
		v.Consent = &store.Consent{PolicyHash: "sha256:c1", Locale: "en", Scope: []string{"identity_verification"}, GrantedAt: at}
		v.Evidence = append(v.Evidence, front)
		return nil
	})
	u2 := mustUpdate(t, s, "ver-ev", ch, func(v *store.Verification) error {
		v.Evidence[0].State, v.Evidence[0].UploadedAt = store.EvidenceUploaded, at.Add(time.Minute)
		v.Evidence = append(v.Evidence, store.Evidence{ID: "ev-selfie", Kind: "selfie", SHA256: sha256Hex([]byte("s")),
			State: store.EvidenceUploaded, CreatedAt: at, UploadedAt: at})
		v.Consent.Locale = "de" // a changed consent is not recorded again
		return nil
	})
	u3 := mustUpdate(t, s, "ver-ev", ch, func(v *store.Verification) error {
		v.Score = 42
		return nil
	})
	if !u1.CreatedAt.Equal(created.CreatedAt) || u2.UpdatedAt.Before(u1.UpdatedAt) || u3.UpdatedAt.Before(u2.UpdatedAt) {
		t.Errorf("times: created %v, updated %v, %v, %v", created.CreatedAt, u1.UpdatedAt, u2.UpdatedAt, u3.UpdatedAt)
	}
	if diff := cmp.Diff(u3, mustGet(t, s, "ver-ev"), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("GetVerification differs from what UpdateVerification returned (-want +got):\n%s", diff)
	}
	if u3.Consent == nil || u3.Consent.Locale != "de" || len(u3.Evidence) != 2 || u3.Evidence[0].State != store.EvidenceUploaded {
		t.Errorf("session after updates = %+v", u3)
	}

	evs, err := s.AuditEvents(t.Context(), seq0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range evs {
		var p struct {
			EvidenceID string `json:"evidence_id"`
			ID         string `json:"verification_id"`
		}
		_ = json.Unmarshal(ev.Payload, &p)
		got = append(got, ev.Type+":"+p.EvidenceID)
		if ev.Actor != "key_2" || ev.CorrelationID != "req-ev" || p.ID != "ver-ev" || ev.SubjectRef != store.SubjectRef("user-ev") {
			t.Errorf("event %d: actor %q, correlation %q, verification %q, subject %q", ev.Seq, ev.Actor, ev.CorrelationID, p.ID, ev.SubjectRef)
		}
	}
	want := []string{
		store.EventVerificationStatusChanged + ":", store.EventConsentRecorded + ":", store.EventEvidenceAdded + ":ev-front",
		store.EventEvidenceUploaded + ":ev-front", store.EventEvidenceAdded + ":ev-selfie", store.EventEvidenceUploaded + ":ev-selfie",
		store.EventVerificationStatusChanged + ":", // the score, within capturing
	}
	if !slices.Equal(got, want) {
		t.Errorf("events = %q, want %q", got, want)
	}
	verifyChain(t, s)
}

func testRawPayload(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreate(t, s, session("ver-raw", "user-raw"))
	cipher := make([]byte, 256)
	for i := range cipher {
		cipher[i] = byte(i)
	}
	mustUpdate(t, s, "ver-raw", store.VerificationChange{EventKey: "veriff:1",
		Payload: &store.RawPayload{ID: "raw-1", Provider: "veriff", ReceivedAt: baseTime(), Ciphertext: cipher}},
		func(*store.Verification) error { return nil })
	got, err := s.RawPayload(ctx, "raw-1")
	if err != nil {
		t.Fatal(err)
	}
	want := store.RawPayload{ID: "raw-1", Provider: "veriff", ReceivedAt: utcMicros(baseTime()), Ciphertext: cipher}
	if diff := cmp.Diff(want, got); diff != "" || got.ReceivedAt.Location() != time.UTC {
		t.Errorf("RawPayload (-want +got):\n%s", diff)
	}
	mustUpdate(t, s, "ver-raw", store.VerificationChange{Payload: &store.RawPayload{ID: "raw-2", Provider: "veriff", Ciphertext: []byte{1}}},
		func(*store.Verification) error { return nil })
	if got, err := s.RawPayload(ctx, "raw-2"); err != nil || got.ReceivedAt.IsZero() {
		t.Errorf("RawPayload without a receive time = %+v, %v; want the store's clock", got, err)
	}
	if _, err := s.RawPayload(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RawPayload(unknown) = %v, want ErrNotFound", err)
	}
	for name, p := range map[string]*store.RawPayload{
		"no id":         {Provider: "veriff", Ciphertext: []byte{1}},
		"no ciphertext": {ID: "raw-3", Provider: "veriff"},
	} {
		_, err := s.UpdateVerification(ctx, "ver-raw", store.VerificationChange{Payload: p}, func(*store.Verification) error { return nil })
		if !errors.Is(err, store.ErrInvalidRecord) {
			t.Errorf("payload with %s: %v, want ErrInvalidRecord", name, err)
		}
	}
	_, err = s.UpdateVerification(ctx, "ver-raw", store.VerificationChange{Payload: &store.RawPayload{ID: "raw-1", Ciphertext: []byte{2}}},
		func(*store.Verification) error { return nil })
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("payload with a used id: %v, want ErrConflict", err)
	}
	if got, err := s.RawPayload(ctx, "raw-1"); err != nil || !bytes.Equal(got.Ciphertext, cipher) {
		t.Errorf("RawPayload(raw-1) after a refused overwrite = %+v, %v", got, err)
	}
	verifyChain(t, s)
}

func testExpireVerifications(t *testing.T, s store.Store) {
	ctx := t.Context()
	cutoff := baseTime()
	for _, tc := range []struct {
		id, status string
		expires    time.Duration // from cutoff; 0: never
	}{
		{"ver-a", store.StatusInitiated, -2 * time.Hour},
		{"ver-b", store.StatusPendingReview, -time.Hour},
		{"ver-c", store.StatusCapturing, time.Hour},
		{"ver-d", store.StatusSubmitted, 0},
		{"ver-e", store.StatusApproved, -3 * time.Hour},
	} {
		v := session(tc.id, "user-exp")
		v.Status = tc.status
		if tc.expires != 0 {
			v.ExpiresAt = cutoff.Add(tc.expires)
		}
		mustCreate(t, s, v)
	}
	expire := func(now time.Time, limit, want int) {
		t.Helper()
		got, err := s.ExpireVerifications(ctx, now, limit)
		if err != nil || len(got) != want {
			t.Errorf("ExpireVerifications(limit %d) = %d sessions, %v; want %d", limit, len(got), err, want)
		}
		for _, v := range got {
			if v.Status != store.StatusExpired {
				t.Errorf("ExpireVerifications returned %s as %s", v.ID, v.Status)
			}
		}
	}
	expire(cutoff, 1, 1) // the earliest first
	if got := mustGet(t, s, "ver-b"); got.Status != store.StatusPendingReview {
		t.Errorf("ver-b expired before ver-a")
	}
	expire(cutoff, 10, 1)
	expire(cutoff, 10, 0)
	expire(cutoff.Add(2*time.Hour), 0, 0)
	for id, want := range map[string]string{"ver-a": store.StatusExpired, "ver-b": store.StatusExpired,
		"ver-c": store.StatusCapturing, "ver-d": store.StatusSubmitted, "ver-e": store.StatusApproved} {
		if got := mustGet(t, s, id); got.Status != want {
			t.Errorf("%s status = %s, want %s", id, got.Status, want)
		}
	}
	changes, _, evs := statusChanges(t, s, "")
	if want := []string{"ver-a:initiated>expired", "ver-b:pending_review>expired"}; !slices.Equal(changes[5:], want) {
		t.Errorf("status events = %q, want the creations then %q", changes, want)
	}
	if evs[5].Actor == "" {
		t.Errorf("expiry event has no actor")
	}
	if items, err := s.ListReviews(ctx, 10); err != nil || len(items) != 0 {
		t.Errorf("ListReviews after expiry = %+v, %v; want none", items, err)
	}
	expire(cutoff.Add(2*time.Hour), 10, 1) // ver-c
	verifyChain(t, s)
}

// reviewFixture writes the review queue of testReviewQueue and testReviewClaims:
// decisions rev-0001..3 with outcome review, rev-0004 approved, and sessions ver-ra
// (oldest), ver-rb (same age and score as rev-0002) in pending_review and ver-rc submitted.
func reviewFixture(t *testing.T, s store.Store) time.Time {
	t0 := utcMicros(baseTime())
	dec := func(n int, outcome string, at time.Time, score float64) store.DecisionRecord {
		d := decision("rev", n)
		d.Outcome, d.CreatedAt, d.Score = outcome, at, score
		return d
	}
	mustWrite(t, s, dec(1, "review", t0, 50), dec(2, "review", t0, 80), dec(3, "review", t0.Add(2*time.Second), 99),
		dec(4, "approve", t0.Add(-time.Hour), 10))
	ses := func(id, status string, at time.Time, score float64) {
		v := session(id, "user-"+id)
		v.Status, v.CreatedAt, v.Score, v.ReasonCodes = status, at, score, []string{"DOC_" + id}
		mustCreate(t, s, v)
	}
	ses("ver-ra", store.StatusPendingReview, t0.Add(-time.Second), 10)
	ses("ver-rb", store.StatusPendingReview, t0, 80)
	ses("ver-rc", store.StatusSubmitted, t0.Add(time.Second), 90)
	return t0
}

func queueIDs(t *testing.T, s store.Store, limit int) []string {
	t.Helper()
	items, err := s.ListReviews(t.Context(), limit)
	if err != nil {
		t.Fatalf("ListReviews: %v", err)
	}
	var ids []string
	for _, it := range items {
		ids = append(ids, it.Kind+":"+it.ID)
	}
	return ids
}

func testReviewQueue(t *testing.T, s store.Store) {
	ctx := t.Context()
	t0 := reviewFixture(t, s)
	want := []string{"verification:ver-ra", "decision:rev-0002", "verification:ver-rb", "decision:rev-0001", "decision:rev-0003"}
	if got := queueIDs(t, s, 10); !slices.Equal(got, want) {
		t.Errorf("review queue = %q, want %q", got, want)
	}
	if got := queueIDs(t, s, 2); !slices.Equal(got, want[:2]) {
		t.Errorf("review queue (limit 2) = %q, want %q", got, want[:2])
	}
	if got := queueIDs(t, s, 0); len(got) != 0 {
		t.Errorf("review queue (limit 0) = %q, want none", got)
	}
	items, err := s.ListReviews(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	wantItems := []store.ReviewItem{
		{Kind: store.ReviewVerification, ID: "ver-ra", UserID: "user-ver-ra", Status: store.StatusPendingReview, Score: 10,
			ReasonCodes: []string{"DOC_ver-ra"}, CreatedAt: t0.Add(-time.Second)},
		{Kind: store.ReviewDecision, ID: "rev-0002", UserID: "user-2", Action: "login", Status: "review", Score: 80,
			ReasonCodes: []string{"NEW_DEVICE", "VELOCITY_USER_1H"}, CreatedAt: t0},
	}
	if diff := cmp.Diff(wantItems, items, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("ListReviews items (-want +got):\n%s", diff)
	}

	// A session that reaches pending_review joins the queue.
	mustUpdate(t, s, "ver-rc", store.VerificationChange{}, func(v *store.Verification) error {
		v.Status = store.StatusPendingReview
		return nil
	})
	want = []string{"verification:ver-ra", "decision:rev-0002", "verification:ver-rb", "decision:rev-0001",
		"verification:ver-rc", "decision:rev-0003"}
	if got := queueIDs(t, s, 10); !slices.Equal(got, want) {
		t.Errorf("review queue = %q, want %q", got, want)
	}
	verifyChain(t, s)
}

func testReviewClaims(t *testing.T, s store.Store) {
	ctx := t.Context()
	reviewFixture(t, s)
	now := time.Now()
	claim := func(kind, id, reviewer string, until time.Time) (store.ReviewItem, error) {
		return s.ClaimReview(ctx, kind, id, reviewer, until, "req-"+reviewer)
	}
	resolve := func(kind, id, reviewer, outcome string) error {
		return s.ResolveReview(ctx, store.ReviewResolution{Kind: kind, ID: id, Reviewer: reviewer, Outcome: outcome,
			Reason: "DOCUMENT_OK", NoteSHA256: sha256Hex([]byte("note by " + reviewer)), CorrelationID: "req-" + reviewer})
	}
	const V, D = store.ReviewVerification, store.ReviewDecision

	// A claim holds the item against other reviewers until it lapses; its holder may renew it.
	it, err := claim(V, "ver-ra", "alice", now.Add(time.Hour))
	if err != nil || it.ClaimedBy != "alice" || !it.ClaimedUntil.Equal(utcMicros(now.Add(time.Hour))) || it.UserID != "user-ver-ra" {
		t.Fatalf("ClaimReview = %+v, %v", it, err)
	}
	if _, err := claim(V, "ver-ra", "bob", now.Add(time.Hour)); !errors.Is(err, store.ErrClaimed) {
		t.Errorf("claim of a held item = %v, want ErrClaimed", err)
	}
	if _, err := claim(V, "ver-ra", "alice", now.Add(2*time.Hour)); err != nil {
		t.Errorf("renewed claim = %v", err)
	}
	items, err := s.ListReviews(ctx, 1)
	if err != nil || len(items) != 1 || items[0].ClaimedBy != "alice" || !items[0].ClaimedUntil.Equal(utcMicros(now.Add(2*time.Hour))) ||
		items[0].ClaimedUntil.Location() != time.UTC {
		t.Errorf("ListReviews shows %+v, %v; want alice's claim", items, err)
	}
	if err := resolve(V, "ver-ra", "bob", store.StatusRejected); !errors.Is(err, store.ErrClaimed) {
		t.Errorf("resolution without the claim = %v, want ErrClaimed", err)
	}
	if err := resolve(D, "rev-0002", "bob", "block"); !errors.Is(err, store.ErrClaimed) {
		t.Errorf("resolution of an unclaimed item = %v, want ErrClaimed", err)
	}

	// A lapsed claim protects nothing and allows no resolution.
	if _, err := claim(D, "rev-0001", "carol", now.Add(-time.Minute)); err != nil {
		t.Fatalf("claim with a past end = %v", err)
	}
	if err := resolve(D, "rev-0001", "carol", "block"); !errors.Is(err, store.ErrClaimed) {
		t.Errorf("resolution with a lapsed claim = %v, want ErrClaimed", err)
	}
	if _, err := claim(D, "rev-0001", "dave", now.Add(time.Hour)); err != nil {
		t.Errorf("claim of a lapsed item = %v", err)
	}

	// Outcomes must fit the kind; unknown, closed and non-review items are not found.
	for _, tc := range []struct{ kind, id, reviewer, outcome string }{
		{D, "rev-0001", "dave", store.StatusApproved}, {V, "ver-ra", "alice", store.StatusExpired},
		{V, "ver-ra", "alice", "approve"}, {V, "ver-ra", "alice", store.StatusPendingReview}, {"case", "ver-ra", "alice", "approve"},
	} {
		if err := resolve(tc.kind, tc.id, tc.reviewer, tc.outcome); !errors.Is(err, store.ErrInvalidRecord) {
			t.Errorf("resolution %s of %s %s = %v, want ErrInvalidRecord", tc.outcome, tc.kind, tc.id, err)
		}
	}
	if _, err := claim("case", "ver-ra", "alice", now); !errors.Is(err, store.ErrInvalidRecord) {
		t.Errorf("claim of an unknown kind = %v, want ErrInvalidRecord", err)
	}
	for _, tc := range []struct{ kind, id string }{{D, "nope"}, {V, "nope"}, {D, "rev-0004"}, {V, "ver-rc"}, {V, "rev-0001"}} {
		if _, err := claim(tc.kind, tc.id, "alice", now.Add(time.Hour)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("claim of %s %s = %v, want ErrNotFound", tc.kind, tc.id, err)
		}
	}

	// Resolving a session moves it and closes the item.
	seq0, _ := head(t, s)
	if err := resolve(V, "ver-ra", "alice", store.StatusApproved); err != nil {
		t.Fatalf("ResolveReview: %v", err)
	}
	if got := mustGet(t, s, "ver-ra"); got.Status != store.StatusApproved || len(got.ReasonCodes) != 0 {
		t.Errorf("resolved session status = %s with reasons %q, want approved without the review's reasons", got.Status, got.ReasonCodes)
	}
	evs, err := s.AuditEvents(ctx, seq0, 10)
	if err != nil || len(evs) != 2 || evs[0].Type != store.EventVerificationStatusChanged || evs[1].Type != store.EventReviewDecided {
		t.Fatalf("events of a resolution = %+v, %v; want status_changed and review.decided", evs, err)
	}
	var sc statusChange
	_ = json.Unmarshal(evs[0].Payload, &sc)
	if evs[0].Actor != "alice" || evs[0].CorrelationID != "req-alice" || sc.Reason != "DOCUMENT_OK" || sc.Previous != store.StatusPendingReview {
		t.Errorf("status event of a resolution = %+v %+v", evs[0], sc)
	}
	var rd struct {
		ID, Kind, Outcome, Reason string
		NoteSHA256                string `json:"note_sha256"`
	}
	_ = json.Unmarshal(evs[1].Payload, &rd)
	if rd.ID != "ver-ra" || rd.Kind != V || rd.Outcome != store.StatusApproved || rd.NoteSHA256 != sha256Hex([]byte("note by alice")) ||
		evs[1].SubjectRef != store.SubjectRef("user-ver-ra") {
		t.Errorf("review.decided = %+v (payload %+v)", evs[1], rd)
	}
	if _, err := claim(V, "ver-ra", "alice", now.Add(time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("claim of a resolved item = %v, want ErrNotFound", err)
	}
	if err := resolve(V, "ver-ra", "alice", store.StatusApproved); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second resolution = %v, want ErrNotFound", err)
	}

	// Resolving a decision closes it; the decision itself stays as it was, and the
	// resolution is read beside it.
	if _, err := s.GetReviewResolution(ctx, D, "rev-0001"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("resolution of an open decision = %v, want ErrNotFound", err)
	}
	if err := resolve(D, "rev-0001", "dave", "block"); err != nil {
		t.Fatalf("ResolveReview(decision): %v", err)
	}
	if d, err := s.GetDecision(ctx, "rev-0001"); err != nil || d.Outcome != "review" {
		t.Errorf("resolved decision = %+v, %v", d, err)
	}
	if r, err := s.GetReviewResolution(ctx, D, "rev-0001"); err != nil || r.Kind != D || r.ID != "rev-0001" || r.Reviewer != "dave" ||
		r.Outcome != "block" || r.Reason != "DOCUMENT_OK" || r.NoteSHA256 != sha256Hex([]byte("note by dave")) ||
		r.DecidedAt.Location() != time.UTC || time.Since(r.DecidedAt) > time.Minute || r.DecidedAt.After(time.Now()) {
		t.Errorf("GetReviewResolution(decision) = %+v, %v", r, err)
	}
	if r, err := s.GetReviewResolution(ctx, V, "ver-ra"); err != nil || r.Reviewer != "alice" || r.Outcome != store.StatusApproved {
		t.Errorf("GetReviewResolution(verification) = %+v, %v", r, err)
	}
	if _, err := s.GetReviewResolution(ctx, D, "no-such-decision"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("resolution of an unknown item = %v, want ErrNotFound", err)
	}
	if got, want := queueIDs(t, s, 10), []string{"decision:rev-0002", "verification:ver-rb", "decision:rev-0003"}; !slices.Equal(got, want) {
		t.Errorf("review queue after resolutions = %q, want %q", got, want)
	}

	// A session sent back for resubmission that reaches review again is a new, unclaimed item.
	if _, err := claim(V, "ver-rb", "erin", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := resolve(V, "ver-rb", "erin", store.StatusNeedsResubmission); err != nil {
		t.Fatal(err)
	}
	if got := queueIDs(t, s, 10); slices.Contains(got, "verification:ver-rb") {
		t.Errorf("resolved session still queued: %q", got)
	}
	mustUpdate(t, s, "ver-rb", store.VerificationChange{}, func(v *store.Verification) error {
		v.Status = store.StatusPendingReview
		return nil
	})
	items, err = s.ListReviews(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(items, func(it store.ReviewItem) bool { return it.ID == "ver-rb" }); i < 0 || items[i].ClaimedBy != "" {
		t.Errorf("session back in review: queue = %+v, want ver-rb unclaimed", items)
	}
	if _, err := s.GetReviewResolution(ctx, V, "ver-rb"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("resolution of a session back in review = %v, want ErrNotFound", err)
	}
	if _, err := claim(V, "ver-rb", "frank", now.Add(time.Hour)); err != nil {
		t.Errorf("claim of a session back in review = %v", err)
	}

	// A change that leaves the status alone and keeps score and reasons keeps the claim; a
	// provider's new score or reasons for a session under review drops it: the holder took it
	// on what the session said before, and claims it again to decide on what it says now.
	mustUpdate(t, s, "ver-rb", store.VerificationChange{}, func(v *store.Verification) error {
		v.Consent = &store.Consent{PolicyHash: "sha256:ab", Locale: "en", Scope: []string{"kyc"}, GrantedAt: now.UTC()}
		return nil
	})
	if items, err := s.ListReviews(ctx, 10); err != nil || !slices.ContainsFunc(items, func(it store.ReviewItem) bool {
		return it.ID == "ver-rb" && it.ClaimedBy == "frank"
	}) {
		t.Errorf("claim after a change to neither score nor reasons: queue = %+v, %v; want ver-rb held by frank", items, err)
	}
	mustUpdate(t, s, "ver-rb", store.VerificationChange{}, func(v *store.Verification) error {
		v.Score, v.ReasonCodes = 92, []string{"WATCHLIST_HIT"}
		return nil
	})
	if err := resolve(V, "ver-rb", "frank", store.StatusApproved); !errors.Is(err, store.ErrClaimed) {
		t.Errorf("resolution on a claim taken before the session's reasons changed = %v, want ErrClaimed", err)
	}
	if got := mustGet(t, s, "ver-rb"); got.Status != store.StatusPendingReview || !slices.Equal(got.ReasonCodes, []string{"WATCHLIST_HIT"}) {
		t.Errorf("session after a refused resolution = %s %q", got.Status, got.ReasonCodes)
	}
	if _, err := claim(V, "ver-rb", "grace", now.Add(time.Hour)); err != nil {
		t.Errorf("claim of a session whose reasons changed = %v", err)
	}

	for typ, want := range map[string]int{store.EventReviewClaimed: 7, store.EventReviewDecided: 3} {
		if got := countType(t, s, typ); got != want {
			t.Errorf("%d %s events, want %d", got, typ, want)
		}
	}
	verifyChain(t, s)
}

func testAppendAudit(t *testing.T, s store.Store) {
	ctx := t.Context()
	ev, err := store.WebhookRejectedEvent("onfido", "bad_signature", []byte(`{"x":1}`), "req-wh", baseTime())
	if err != nil {
		t.Fatal(err)
	}
	ev.Seq, ev.Hash, ev.PrevHash = 99, []byte("forged"), []byte("forged") // set by the store
	if err := s.AppendAudit(ctx, ev); err != nil {
		t.Fatalf("AppendAudit: %v", err)
	}
	mustWrite(t, s, decision("aa", 1))
	zero, err := store.WebhookRejectedEvent("persona", "stale_timestamp", nil, "req-wh-2", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(ctx, zero); err != nil {
		t.Fatalf("AppendAudit without a time: %v", err)
	}
	seq0, head0 := head(t, s)
	for name, bad := range map[string]store.AuditEvent{
		"no type":           {Payload: json.RawMessage(`{}`)},
		"array payload":     {Type: "x", Payload: json.RawMessage(`[1]`)},
		"no payload":        {Type: "x"},
		"NUL in actor":      {Type: "x", Actor: "a\x00", Payload: json.RawMessage(`{}`)},
		"bad UTF-8 subject": {Type: "x", SubjectRef: "\xff", Payload: json.RawMessage(`{}`)},
	} {
		if err := s.AppendAudit(ctx, bad); !errors.Is(err, store.ErrInvalidRecord) {
			t.Errorf("AppendAudit(%s) = %v, want ErrInvalidRecord", name, err)
		}
	}
	if seq, h := head(t, s); seq != seq0 || !bytes.Equal(h, head0) {
		t.Errorf("refused events moved the audit head from %d to %d", seq0, seq)
	}

	evs := allEvents(t, s)
	if len(evs) != 3 {
		t.Fatalf("%d events, want 3", len(evs))
	}
	got := evs[0]
	want, _ := store.CanonicalJSON(ev.Payload)
	if got.Seq != 1 || got.Type != store.EventWebhookRejected || got.Actor != "webhook" || got.CorrelationID != "req-wh" ||
		got.SubjectRef != "" || !got.Time.Equal(utcMicros(baseTime())) || !bytes.Equal(got.Payload, want) || got.PrevHash != nil {
		t.Errorf("appended event = %+v, want %+v", got, ev)
	}
	if evs[1].Type != store.EventDecisionCreated || evs[2].Type != store.EventWebhookRejected || evs[2].Time.IsZero() {
		t.Errorf("events = %+v", evs)
	}
	verifyChain(t, s)
}

// RunClaimLapse checks, on an empty store s whose clock the caller controls (now reads it,
// advance moves it forward), that a review claim holds exactly until its end by the
// store's clock, and that the store stamps sessions and events with that clock.
func RunClaimLapse(t *testing.T, s store.Store, advance func(time.Duration), now func() time.Time) {
	ctx := t.Context()
	v := session("ver-lapse", "user-lapse")
	v.Status = store.StatusPendingReview
	created := mustCreate(t, s, v)
	if !created.CreatedAt.Equal(utcMicros(now())) {
		t.Errorf("CreatedAt = %v, want the store's clock %v", created.CreatedAt, now())
	}
	const V = store.ReviewVerification
	if _, err := s.ClaimReview(ctx, V, "ver-lapse", "alice", now().Add(time.Minute), "req"); err != nil {
		t.Fatal(err)
	}
	advance(59 * time.Second)
	if _, err := s.ClaimReview(ctx, V, "ver-lapse", "bob", now().Add(time.Minute), "req"); !errors.Is(err, store.ErrClaimed) {
		t.Errorf("claim 1 s before the holder's claim ends = %v, want ErrClaimed", err)
	}
	advance(time.Second)
	resolution := store.ReviewResolution{Kind: V, ID: "ver-lapse", Reviewer: "alice", Outcome: store.StatusRejected, Reason: "DOCUMENT_FORGED"}
	if err := s.ResolveReview(ctx, resolution); !errors.Is(err, store.ErrClaimed) {
		t.Errorf("resolution when the claim ends = %v, want ErrClaimed", err)
	}
	it, err := s.ClaimReview(ctx, V, "ver-lapse", "bob", now().Add(time.Minute), "req")
	if err != nil || it.ClaimedBy != "bob" {
		t.Fatalf("claim once the previous one ended = %+v, %v", it, err)
	}
	advance(time.Second)
	resolution.Reviewer = "bob"
	if err := s.ResolveReview(ctx, resolution); err != nil {
		t.Fatalf("ResolveReview: %v", err)
	}
	got := mustGet(t, s, "ver-lapse")
	if got.Status != store.StatusRejected || !got.UpdatedAt.Equal(utcMicros(now())) {
		t.Errorf("resolved session = %+v, want rejected, updated at %v", got, now())
	}
	evs := allEvents(t, s)
	if last := evs[len(evs)-1]; last.Type != store.EventReviewDecided || !last.Time.Equal(utcMicros(now())) {
		t.Errorf("last event = %+v, want review.decided at %v", last, now())
	}
	verifyChain(t, s)
}
