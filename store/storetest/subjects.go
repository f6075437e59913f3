package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/verdict-engine/verdict/store"
)

func subjectKey(user, kek string, b byte) store.SubjectKey {
	return store.SubjectKey{UserID: user, KEKID: kek, Wrapped: bytes.Repeat([]byte{b}, 60), CreatedAt: utcMicros(baseTime())}
}

func testSubjectKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.GetSubjectKey(ctx, "sk-a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetSubjectKey(unknown) = %v, want ErrNotFound", err)
	}
	first := []store.SubjectKey{subjectKey("sk-a", "k1", 1), subjectKey("sk-b", "k1", 2)}
	got, err := s.EnsureSubjectKeys(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(got, first, sameKey) {
		t.Fatalf("EnsureSubjectKeys(new) = %+v, want the candidates", got)
	}
	// A second candidate for a user with a key loses to the stored one; order is kept.
	got, err = s.EnsureSubjectKeys(ctx, []store.SubjectKey{subjectKey("sk-c", "k1", 3), subjectKey("sk-a", "k1", 9)})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !sameKey(got[0], subjectKey("sk-c", "k1", 3)) || !sameKey(got[1], first[0]) {
		t.Fatalf("EnsureSubjectKeys(mixed) = %+v", got)
	}
	if k, err := s.GetSubjectKey(ctx, "sk-b"); err != nil || !sameKey(k, first[1]) {
		t.Fatalf("GetSubjectKey = %+v, %v", k, err)
	}

	// Lookup finds exactly the users that have a key, whatever their ids hold.
	odd := []store.SubjectKey{subjectKey(`sk-"q",\`, "k1", 4), subjectKey("sk-ü 🙂", "k1", 5)}
	if _, err := s.EnsureSubjectKeys(ctx, odd); err != nil {
		t.Fatal(err)
	}
	found, err := s.LookupSubjectKeys(ctx, []string{odd[0].UserID, "sk-none", odd[1].UserID, "sk-a"})
	if err != nil || len(found) != 3 {
		t.Fatalf("LookupSubjectKeys = %+v, %v; want 3 keys", found, err)
	}
	for _, k := range found {
		if k.UserID != "sk-a" && !sameKey(k, odd[0]) && !sameKey(k, odd[1]) {
			t.Errorf("LookupSubjectKeys returned %+v", k)
		}
	}

	// Rewrap replaces every key not under the given master key, and only those.
	n, err := s.RewrapSubjectKeys(ctx, "k2", func(k store.SubjectKey) (store.SubjectKey, error) {
		k.KEKID, k.Wrapped = "k2", append([]byte{0xee}, k.Wrapped...)
		return k, nil
	})
	if err != nil || n != 5 {
		t.Fatalf("RewrapSubjectKeys = %d, %v; want 5", n, err)
	}
	if k, _ := s.GetSubjectKey(ctx, "sk-a"); k.KEKID != "k2" || k.Wrapped[0] != 0xee || len(k.Wrapped) != 61 {
		t.Fatalf("rewrapped key = %+v", k)
	}
	if n, err := s.RewrapSubjectKeys(ctx, "k2", nil); err != nil || n != 0 {
		t.Fatalf("second RewrapSubjectKeys = %d, %v; want 0", n, err)
	}
	boom := errors.New("boom")
	if _, err := s.RewrapSubjectKeys(ctx, "k3", func(store.SubjectKey) (store.SubjectKey, error) { return store.SubjectKey{}, boom }); !errors.Is(err, boom) {
		t.Fatalf("RewrapSubjectKeys with a failing rewrap = %v", err)
	}
}

func testSampleSubjectKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	if got, err := s.SampleSubjectKeys(ctx, 2); err != nil || len(got) != 0 {
		t.Fatalf("SampleSubjectKeys of an empty store = %+v, %v", got, err)
	}
	// Three master key ids, one of them sorting between the others, with 4, 1 and 2 keys.
	var keys []store.SubjectKey
	for i := range 4 {
		keys = append(keys, subjectKey(fmt.Sprintf("ss-a%d", i), "k1", byte(10+i)))
	}
	keys = append(keys, subjectKey("ss-b", "k3", 20), subjectKey("ss-c0", "k2", 30), subjectKey("ss-c1", "k2", 31))
	if _, err := s.EnsureSubjectKeys(ctx, keys); err != nil {
		t.Fatal(err)
	}
	stored := map[string]store.SubjectKey{}
	for _, k := range keys {
		stored[k.UserID] = k
	}
	for _, tc := range []struct {
		perKEK int
		want   map[string]int
	}{
		{0, map[string]int{}},
		{1, map[string]int{"k1": 1, "k2": 1, "k3": 1}},
		{2, map[string]int{"k1": 2, "k2": 2, "k3": 1}},
		{10, map[string]int{"k1": 4, "k2": 2, "k3": 1}},
	} {
		got, err := s.SampleSubjectKeys(ctx, tc.perKEK)
		if err != nil {
			t.Fatalf("SampleSubjectKeys(%d): %v", tc.perKEK, err)
		}
		per := map[string]int{}
		seen := map[string]bool{}
		for _, k := range got {
			if want, ok := stored[k.UserID]; !ok || !sameKey(k, want) || seen[k.UserID] {
				t.Fatalf("SampleSubjectKeys(%d) returned %+v: not a stored key, or twice", tc.perKEK, k)
			}
			seen[k.UserID] = true
			per[k.KEKID]++
		}
		if !maps.Equal(per, tc.want) {
			t.Errorf("SampleSubjectKeys(%d): keys per master key %v, want %v", tc.perKEK, per, tc.want)
		}
	}
}

func testClaimKeyCheck(t *testing.T, s store.Store) {
	ctx := t.Context()
	if got, err := s.ClaimKeyCheck(ctx, "pseudonym", []byte("first")); err != nil || string(got) != "first" {
		t.Fatalf("first claim = %q, %v", got, err)
	}
	if got, err := s.ClaimKeyCheck(ctx, "pseudonym", []byte("second")); err != nil || string(got) != "first" {
		t.Fatalf("later claim = %q, %v; want the first value", got, err)
	}
	// Concurrent first claims of another name agree on one of them.
	const n = 8
	got := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			v, err := s.ClaimKeyCheck(ctx, "master:race", []byte(fmt.Sprint("v", i)))
			if err != nil {
				t.Error(err)
			}
			got[i] = string(v)
		})
	}
	wg.Wait()
	if !strings.HasPrefix(got[0], "v") || slices.ContainsFunc(got, func(v string) bool { return v != got[0] }) {
		t.Fatalf("concurrent claims returned %q, want one value for all", got)
	}
	if v, err := s.ClaimKeyCheck(ctx, "pseudonym", []byte("first")); err != nil || string(v) != "first" {
		t.Fatalf("the first name after the race = %q, %v", v, err)
	}
}

func sameKey(a, b store.SubjectKey) bool {
	return a.UserID == b.UserID && a.KEKID == b.KEKID && bytes.Equal(a.Wrapped, b.Wrapped) && a.CreatedAt.Equal(b.CreatedAt)
}

func testEraseSubject(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.EnsureSubjectKeys(ctx, []store.SubjectKey{subjectKey("er-u", "k1", 1), subjectKey("er-other", "k1", 2)}); err != nil {
		t.Fatal(err)
	}
	var recs []store.DecisionRecord
	for i := range 5 {
		r := decision("er", i)
		r.SubjectID = "er-u"
		if i == 4 {
			r.SubjectID = "er-other"
		}
		if i != 3 { // one decision without personal data
			r.PII = []byte(fmt.Sprintf("sealed-%d", i))
		}
		recs = append(recs, r)
	}
	mustWrite(t, s, recs...)
	mustCreate(t, s, session("ver-er-1", "er-u"))
	mustCreate(t, s, session("ver-er-2", "er-u"))
	mustCreate(t, s, session("ver-er-3", "er-other"))
	mustUpdate(t, s, "ver-er-1", store.VerificationChange{Payload: &store.RawPayload{ID: "raw-er-1", Provider: "onfido", Ciphertext: []byte{1}}},
		func(v *store.Verification) error {
			v.Evidence = []store.Evidence{{ID: "ev1", Kind: "selfie", BlobKey: "verifications/ver-er-1/ev1", SHA256: "00", Size: 1, State: store.EvidencePending}}
			return nil
		})
	mustUpdate(t, s, "ver-er-3", store.VerificationChange{Payload: &store.RawPayload{ID: "raw-er-3", Provider: "onfido", Ciphertext: []byte{3}}},
		func(*store.Verification) error { return nil })

	e, err := s.EraseSubject(ctx, "er-u", "admin-1", "req-erase")
	if err != nil {
		t.Fatal(err)
	}
	if !e.KeyDestroyed || e.Decisions != 3 || e.Verify != 2 || e.RawPayloads != 1 ||
		!slices.Equal(e.Evidence, []store.DueEvidence{{VerificationID: "ver-er-1", EvidenceID: "ev1", BlobKey: "verifications/ver-er-1/ev1"}}) ||
		e.UserID != "er-u" || e.ErasedAt.IsZero() {
		t.Fatalf("EraseSubject = %+v", e)
	}
	if _, err := s.GetSubjectKey(ctx, "er-u"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("key after erasure: %v", err)
	}
	for i := range 5 {
		d, err := s.GetDecision(ctx, fmt.Sprintf("er-%04d", i))
		if err != nil {
			t.Fatal(err)
		}
		if i < 4 && d.PII != nil {
			t.Errorf("decision %d keeps its sealed personal data", i)
		}
		if i == 4 && string(d.PII) != "sealed-4" {
			t.Errorf("another subject's decision lost its personal data: %q", d.PII)
		}
		if !bytes.Equal(d.Input, recs[i].Input) || d.Outcome != recs[i].Outcome {
			t.Errorf("decision %d: snapshot or outcome changed by erasure", i)
		}
	}
	if _, err := s.RawPayload(ctx, "raw-er-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("raw payload after erasure: %v", err)
	}
	if _, err := s.RawPayload(ctx, "raw-er-3"); err != nil {
		t.Errorf("another subject's raw payload: %v", err)
	}
	if ids, err := s.RawPayloadIDs(ctx, "ver-er-1"); err != nil || len(ids) != 0 {
		t.Errorf("RawPayloadIDs(erased session) = %v, %v", ids, err)
	}
	if ids, err := s.RawPayloadIDs(ctx, "ver-er-3"); err != nil || !slices.Equal(ids, []string{"raw-er-3"}) {
		t.Errorf("RawPayloadIDs(other session) = %v, %v", ids, err)
	}
	if v, err := s.GetVerification(ctx, "ver-er-1"); err != nil || len(v.Evidence) != 1 || v.Status != store.StatusInitiated {
		t.Errorf("verification after erasure = %+v, %v; want it kept", v, err)
	}
	if k, err := s.GetSubjectKey(ctx, "er-other"); err != nil || k.UserID != "er-other" {
		t.Errorf("another subject's key: %v", err)
	}

	evs := auditAll(t, s)
	last := evs[len(evs)-1]
	if last.Type != store.EventSubjectErased || last.SubjectRef != store.SubjectRef("er-u") || last.Actor != "admin-1" || last.CorrelationID != "req-erase" {
		t.Fatalf("last audit event = %+v", last)
	}
	if want := `{"decisions":3,"evidence":1,"key_destroyed":true,"raw_payloads":1,"verifications":2}`; string(last.Payload) != want {
		t.Errorf("erasure payload = %s, want %s", last.Payload, want)
	}
	if bytes.Contains(last.Payload, []byte("er-u")) {
		t.Error("erasure event holds the raw user id")
	}
	if _, _, err := store.VerifyChain(ctx, s); err != nil {
		t.Fatalf("chain after erasure: %v", err)
	}

	// Erasing again, or a subject never seen, succeeds with nothing to do, and is audited.
	for _, u := range []string{"er-u", "er-never"} {
		e, err := s.EraseSubject(ctx, u, "admin-1", "req-again")
		if err != nil || e.KeyDestroyed || e.Decisions != 0 || e.RawPayloads != 0 {
			t.Fatalf("EraseSubject(%s) again = %+v, %v", u, e, err)
		}
	}
	if n := len(auditAll(t, s)); n != len(evs)+2 {
		t.Errorf("audit events after two more erasures: %d, want %d", n, len(evs)+2)
	}
}

// testMarkSubjectEvidenceDeleted: after an erasure deleted blobs, the store marks only
// those pointers of that subject deleted, audits it without the user id, and a later
// erasure lists only the pointers still live (a blob whose deletion failed is retried).
func testMarkSubjectEvidenceDeleted(t *testing.T, s store.Store) {
	ctx := t.Context()
	at := baseTime()
	evidence := func(vid string, ids ...string) []store.Evidence {
		var ev []store.Evidence
		for _, id := range ids {
			ev = append(ev, store.Evidence{ID: id, Kind: "document_front", BlobKey: "evidence/" + vid + "/" + id, SHA256: "ab",
				ContentType: "image/jpeg", Size: 3, State: store.EvidenceUploaded, CreatedAt: at, UploadedAt: at})
		}
		return ev
	}
	for _, v := range []struct{ id, user string }{{"ver-mk-1", "mk-u"}, {"ver-mk-2", "mk-u"}, {"ver-mk-3", "mk-other"}} {
		mustCreate(t, s, session(v.id, v.user))
		mustUpdate(t, s, v.id, store.VerificationChange{}, func(x *store.Verification) error {
			x.Evidence = evidence(v.id, "a", "b")
			return nil
		})
	}
	e, err := s.EraseSubject(ctx, "mk-u", "admin-1", "req-erase")
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Evidence) != 4 {
		t.Fatalf("EraseSubject listed %+v, want the 4 pointers of mk-u", e.Evidence)
	}
	for _, d := range e.Evidence {
		if d.BlobKey != "evidence/"+d.VerificationID+"/"+d.EvidenceID || (d.VerificationID != "ver-mk-1" && d.VerificationID != "ver-mk-2") {
			t.Fatalf("EraseSubject listed %+v", d)
		}
	}
	before := mustGet(t, s, "ver-mk-1")
	n0 := len(auditAll(t, s))

	// Every blob but ver-mk-2/b was deleted; the caller also passes another subject's
	// pointer and an unknown session: both are skipped.
	var deleted []store.DueEvidence
	for _, d := range e.Evidence {
		if d.VerificationID != "ver-mk-2" || d.EvidenceID != "b" {
			deleted = append(deleted, d)
		}
	}
	deleted = append(deleted, store.DueEvidence{VerificationID: "ver-mk-3", EvidenceID: "a", BlobKey: "evidence/ver-mk-3/a"},
		store.DueEvidence{VerificationID: "ver-mk-none", EvidenceID: "a", BlobKey: "evidence/ver-mk-none/a"})
	n, err := s.MarkSubjectEvidenceDeleted(ctx, "mk-u", "admin-1", "req-erase", deleted)
	if err != nil || n != 3 {
		t.Fatalf("MarkSubjectEvidenceDeleted = %d, %v; want 3", n, err)
	}
	states := func(id string) []string {
		var out []string
		for _, ev := range mustGet(t, s, id).Evidence {
			out = append(out, ev.State)
		}
		return out
	}
	for id, want := range map[string][]string{
		"ver-mk-1": {store.EvidenceDeleted, store.EvidenceDeleted},
		"ver-mk-2": {store.EvidenceDeleted, store.EvidenceUploaded},
		"ver-mk-3": {store.EvidenceUploaded, store.EvidenceUploaded},
	} {
		if got := states(id); !slices.Equal(got, want) {
			t.Errorf("%s evidence states = %v, want %v", id, got, want)
		}
	}
	after := mustGet(t, s, "ver-mk-1")
	if !after.UpdatedAt.Equal(before.UpdatedAt) || after.Status != before.Status || after.Evidence[0].SHA256 != "ab" ||
		after.Evidence[0].BlobKey != "evidence/ver-mk-1/a" || after.Evidence[0].Size != 3 {
		t.Errorf("marking changed more than the state: %+v, was %+v", after, before)
	}

	evs := auditAll(t, s)
	if len(evs) != n0+1 {
		t.Fatalf("audit events: %d, want %d", len(evs), n0+1)
	}
	last := evs[len(evs)-1]
	if last.Type != store.EventSubjectEvidenceDeleted || last.SubjectRef != store.SubjectRef("mk-u") || last.Actor != "admin-1" ||
		last.CorrelationID != "req-erase" || string(last.Payload) != `{"count":3}` {
		t.Errorf("audit event = %+v (payload %s)", last, last.Payload)
	}
	if bytes.Contains(last.Payload, []byte("mk-u")) {
		t.Error("the event holds the raw user id")
	}

	// Marking again changes nothing and audits nothing.
	if n, err := s.MarkSubjectEvidenceDeleted(ctx, "mk-u", "admin-1", "req-again", deleted); err != nil || n != 0 {
		t.Fatalf("MarkSubjectEvidenceDeleted again = %d, %v", n, err)
	}
	if got := len(auditAll(t, s)); got != n0+1 {
		t.Errorf("audit events after marking nothing: %d, want %d", got, n0+1)
	}
	// Erasing again lists only the pointer whose blob was not deleted.
	e, err = s.EraseSubject(ctx, "mk-u", "admin-1", "req-again")
	if err != nil {
		t.Fatal(err)
	}
	if want := []store.DueEvidence{{VerificationID: "ver-mk-2", EvidenceID: "b", BlobKey: "evidence/ver-mk-2/b"}}; !slices.Equal(e.Evidence, want) {
		t.Errorf("EraseSubject again listed %+v, want %+v", e.Evidence, want)
	}
	if _, _, err := store.VerifyChain(ctx, s); err != nil {
		t.Fatalf("chain: %v", err)
	}
}

// auditAll returns every audit event.
func auditAll(t *testing.T, s store.Store) []store.AuditEvent {
	t.Helper()
	var all []store.AuditEvent
	for {
		after := int64(0)
		if len(all) > 0 {
			after = all[len(all)-1].Seq
		}
		page, err := s.AuditEvents(t.Context(), after, 500)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
	}
}

func testNewSubjectKeyWithDecision(t *testing.T, s store.Store) {
	ctx := t.Context()
	withKey := func(r store.DecisionRecord, user string, b byte) store.DecisionRecord {
		r.SubjectID = user
		k := subjectKey(user, "k1", b)
		r.NewSubjectKey = &k
		r.PII = []byte{b}
		return r
	}
	// Two records of a new subject carrying the same key, and one of another: all written,
	// with their keys.
	a, b, c := withKey(decision("nk", 1), "nk-u1", 1), withKey(decision("nk", 2), "nk-u1", 1), withKey(decision("nk", 3), "nk-u2", 2)
	results, err := s.WriteDecisions(ctx, []store.DecisionRecord{a, b, c})
	if err != nil || results[0] != nil || results[1] != nil || results[2] != nil {
		t.Fatalf("WriteDecisions = %v, %v", results, err)
	}
	keys, err := s.LookupSubjectKeys(ctx, []string{"nk-u1", "nk-u2", "nk-none"})
	if err != nil || len(keys) != 2 {
		t.Fatalf("LookupSubjectKeys = %+v, %v", keys, err)
	}
	for _, k := range keys {
		want := map[string]byte{"nk-u1": 1, "nk-u2": 2}[k.UserID]
		if !sameKey(k, subjectKey(k.UserID, "k1", want)) {
			t.Errorf("stored key %+v", k)
		}
	}
	// A record with another new key for a subject that has one is refused and leaves no
	// trace; its idempotency key stays free. The rest of the batch is written.
	before := len(auditAll(t, s))
	lost := withKey(decision("nk", 4), "nk-u1", 9)
	lost.IdempotencyKey = "nk-idem"
	ok := decision("nk", 5)
	results, err = s.WriteDecisions(ctx, []store.DecisionRecord{lost, ok})
	if err != nil || !errors.Is(results[0], store.ErrSubjectKeyExists) || results[1] != nil {
		t.Fatalf("WriteDecisions(lost key) = %v, %v", results, err)
	}
	if _, err := s.GetDecision(ctx, lost.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("refused record stored: %v", err)
	}
	if _, err := s.LookupIdempotency(ctx, "nk-idem"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("refused record's idempotency key kept: %v", err)
	}
	if n := len(auditAll(t, s)); n != before+1 {
		t.Errorf("audit events: %d, want %d (the written record's only)", n, before+1)
	}
	if k, _ := s.GetSubjectKey(ctx, "nk-u1"); !sameKey(k, subjectKey("nk-u1", "k1", 1)) {
		t.Errorf("the losing key replaced the stored one: %+v", k)
	}
	lost.NewSubjectKey = nil
	if results, err := s.WriteDecisions(ctx, []store.DecisionRecord{lost}); err != nil || results[0] != nil {
		t.Fatalf("the record resealed under the stored key: %v %v", results, err)
	}
	// A key that is not the record's subject's is invalid.
	bad := withKey(decision("nk", 6), "nk-u3", 3)
	bad.NewSubjectKey.UserID = "someone-else"
	if results, err := s.WriteDecisions(ctx, []store.DecisionRecord{bad}); err != nil || !errors.Is(results[0], store.ErrInvalidRecord) {
		t.Fatalf("foreign key: %v %v", results, err)
	}
}
