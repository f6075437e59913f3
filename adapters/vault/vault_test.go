package vault_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verdict-engine/verdict/adapters/vault"
	"github.com/verdict-engine/verdict/store"
	"github.com/verdict-engine/verdict/store/sqlite"
)

func open(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func ring(t *testing.T, spec string) *vault.Ring {
	t.Helper()
	r, err := vault.ParseRing(spec)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func b64(b byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32)) }

var secret = []byte(`[{"path":["subject","name"],"value":"Jane Canary-Doe"}]`)

func TestSealOpenBoundToSubjectRecordAndField(t *testing.T) {
	ctx := t.Context()
	v := vault.New(ring(t, "k1:"+b64(1)), open(t))
	a, err := v.Seal(ctx, "u1", vault.DecisionAD("dec-a"), secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(a, []byte("Canary")) {
		t.Fatal("plaintext visible in the sealed value")
	}
	if got, err := v.Open(ctx, "u1", vault.DecisionAD("dec-a"), a); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := v.Seal(ctx, "u2", vault.DecisionAD("dec-b"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	// Row A's value copied into row B, another field, or another subject's row: refused.
	for name, c := range map[string]struct {
		user string
		ad   vault.AD
	}{
		"other record":  {"u1", vault.DecisionAD("dec-b")},
		"other field":   {"u1", vault.AD{Record: "decision", ID: "dec-a", Field: "body"}},
		"other kind":    {"u1", vault.AD{Record: "raw_payload", ID: "dec-a", Field: "pii"}},
		"other subject": {"u2", vault.DecisionAD("dec-a")},
	} {
		if _, err := v.Open(ctx, c.user, c.ad, a); !errors.Is(err, vault.ErrDecrypt) {
			t.Errorf("%s: Open = %v, want ErrDecrypt", name, err)
		}
	}
	flipped := bytes.Clone(a)
	flipped[len(flipped)-1] ^= 1
	if _, err := v.Open(ctx, "u1", vault.DecisionAD("dec-a"), flipped); !errors.Is(err, vault.ErrDecrypt) {
		t.Errorf("tampered: %v", err)
	}
	if _, err := v.Open(ctx, "u1", vault.DecisionAD("dec-a"), a[:5]); !errors.Is(err, vault.ErrDecrypt) {
		t.Errorf("truncated: %v", err)
	}
	if _, err := v.Open(ctx, "nobody", vault.DecisionAD("dec-a"), a); !errors.Is(err, vault.ErrShredded) {
		t.Errorf("subject without a key: %v", err)
	}
}

func TestErasureShredsAndBackupsDieWithTheRetiredMasterKey(t *testing.T) {
	ctx := t.Context()
	st := open(t)
	v1 := vault.New(ring(t, "k1:"+b64(1)), st)
	sealed, err := v1.Seal(ctx, "u1", vault.DecisionAD("d1"), secret)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v1.Seal(ctx, "u2", vault.DecisionAD("d2"), secret); err != nil {
		t.Fatal(err)
	}
	backup, err := st.GetSubjectKey(ctx, "u1") // what a backup taken now holds
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(backup.Wrapped, bytes.Repeat([]byte{1}, 32)) {
		t.Fatal("data key stored unwrapped")
	}

	e, err := v1.Erase(ctx, "u1", "admin", "req-1", nil)
	if err != nil || !e.KeyDestroyed {
		t.Fatalf("Erase = %+v, %v", e, err)
	}
	if _, err := v1.Open(ctx, "u1", vault.DecisionAD("d1"), sealed); !errors.Is(err, vault.ErrShredded) {
		t.Fatalf("Open after erasure = %v, want ErrShredded", err)
	}
	// New data for the subject gets a new key, under which the old value does not open.
	if _, err := v1.Seal(ctx, "u1", vault.DecisionAD("d3"), []byte("new")); err != nil {
		t.Fatal(err)
	}
	if _, err := v1.Open(ctx, "u1", vault.DecisionAD("d1"), sealed); !errors.Is(err, vault.ErrDecrypt) {
		t.Fatalf("old value under the new key = %v, want ErrDecrypt", err)
	}

	// Rotation: k2 becomes active, keys are rewrapped, k1 is retired.
	v2 := vault.New(ring(t, "k2:"+b64(2)+",k1:"+b64(1)), st)
	if n, err := v2.Rewrap(ctx); err != nil || n != 2 {
		t.Fatalf("Rewrap = %d, %v; want 2 (u1's new key and u2's)", n, err)
	}
	if k, _ := st.GetSubjectKey(ctx, "u2"); k.KEKID != "k2" {
		t.Fatalf("u2's key still under %q", k.KEKID)
	}
	v3 := vault.New(ring(t, "k2:"+b64(2)), st)
	if _, err := v3.Open(ctx, "u2", vault.DecisionAD("d2b"), mustSeal(t, v1, "u2", "d2b")); err != nil {
		t.Fatalf("u2's data after rotation: %v", err)
	}

	// A restored backup brings u1's old wrapped key back: with k1 retired it is useless.
	restored := open(t)
	if _, err := restored.EnsureSubjectKeys(ctx, []store.SubjectKey{backup}); err != nil {
		t.Fatal(err)
	}
	_, err = vault.New(ring(t, "k2:"+b64(2)), restored).Open(ctx, "u1", vault.DecisionAD("d1"), sealed)
	if err == nil || !strings.Contains(err.Error(), `"k1"`) {
		t.Fatalf("backup's key under a retired master key: %v, want a refusal naming k1", err)
	}
}

func mustSeal(t *testing.T, v *vault.Vault, user, id string) []byte {
	t.Helper()
	b, err := v.Seal(t.Context(), user, vault.DecisionAD(id), secret)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWriterSealsDecisionsAndStoresRefuseUnsealed(t *testing.T) {
	ctx := t.Context()
	st := open(t)
	v := vault.New(ring(t, "k1:"+b64(1)), st)
	rec := func(id, user string) store.DecisionRecord {
		return store.DecisionRecord{ID: id, Action: "login", SubjectID: user, Outcome: "approve", PolicyVersion: "v", PolicyHash: "h",
			Input: []byte(`{"subject":{"id":"` + user + `"}}`), PIIPlain: secret, Response: []byte(`{}`)}
	}
	results, err := v.Writer(st).WriteDecisions(ctx, []store.DecisionRecord{rec("d1", "u1"), rec("d2", "u2"), rec("d3", "u1")})
	if err != nil || results[0] != nil || results[1] != nil || results[2] != nil {
		t.Fatalf("WriteDecisions = %v, %v", results, err)
	}
	for _, id := range []string{"d1", "d2", "d3"} {
		d, err := st.GetDecision(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if d.PIIPlain != nil || bytes.Contains(d.PII, []byte("Canary")) {
			t.Fatalf("%s stored unsealed", id)
		}
		if got, err := v.Open(ctx, d.SubjectID, vault.DecisionAD(id), d.PII); err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("%s: Open = %q, %v", id, got, err)
		}
	}
	// Without the vault's writer the store refuses personal data in the clear.
	results, err = st.WriteDecisions(ctx, []store.DecisionRecord{rec("d4", "u1")})
	if err != nil || !errors.Is(results[0], store.ErrInvalidRecord) {
		t.Fatalf("unsealed write = %v, %v; want ErrInvalidRecord", results, err)
	}
}

func TestConcurrentFirstSealsAgreeOnOneKey(t *testing.T) {
	ctx := t.Context()
	st := open(t)
	r := ring(t, "k1:"+b64(1))
	var wg sync.WaitGroup
	sealed := make([][]byte, 8)
	for i := range sealed {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A vault per goroutine: as many replicas, none with a cached key.
			b, err := vault.New(r, st).Seal(ctx, "u-race", vault.DecisionAD("d"), secret)
			if err != nil {
				t.Error(err)
			}
			sealed[i] = b
		}()
	}
	wg.Wait()
	v := vault.New(r, st)
	for i, b := range sealed {
		if _, err := v.Open(ctx, "u-race", vault.DecisionAD("d"), b); err != nil {
			t.Errorf("value %d sealed under a key that lost the race: %v", i, err)
		}
	}
}

func TestParseRing(t *testing.T) {
	if r, err := vault.ParseRing(b64(1)); err != nil || r.Active() != "1" {
		t.Fatalf("lone key: %v", err)
	}
	if r, err := vault.ParseRing(" new:" + b64(2) + ", old:" + b64(1)); err != nil || r.Active() != "new" {
		t.Fatalf("two keys: %v", err)
	}
	for _, bad := range []string{"", "k1:short", "k1:" + b64(1) + ",k1:" + b64(2), b64(1) + "," + b64(2), "bad id!:" + b64(1), "k1:" + b64(1)[:10], "k2:" + b64(1) + ",k3:" + b64(1)} {
		if _, err := vault.ParseRing(bad); err == nil {
			t.Errorf("ParseRing(%q) accepted", bad)
		} else if strings.Contains(err.Error(), b64(1)) {
			t.Errorf("error repeats the key: %v", err)
		}
	}
}

// hookWriter runs before once, ahead of its first write.
type hookWriter struct {
	store.DecisionWriter
	before func()
}

func (h *hookWriter) WriteDecisions(ctx context.Context, recs []store.DecisionRecord) ([]error, error) {
	if h.before != nil {
		f := h.before
		h.before = nil
		f()
	}
	return h.DecisionWriter.WriteDecisions(ctx, recs)
}

// Two replicas meet a new subject at once: the one whose key loses reseals under the
// winner's, in the same WriteDecisions call, and every record opens.
func TestWriterLosingTheKeyRaceReseals(t *testing.T) {
	ctx := t.Context()
	st := open(t)
	r := ring(t, "k1:"+b64(1))
	a, b := vault.New(r, st), vault.New(r, st)
	rec := func(id string) store.DecisionRecord {
		return store.DecisionRecord{ID: id, Action: "login", SubjectID: "u-new", Outcome: "approve", PolicyVersion: "v", PolicyHash: "h",
			Input: []byte(`{}`), PIIPlain: secret, Response: []byte(`{}`)}
	}
	hook := &hookWriter{DecisionWriter: st, before: func() {
		// Replica a stores its key for u-new after b decided to create one.
		if res, err := a.Writer(st).WriteDecisions(ctx, []store.DecisionRecord{rec("from-a")}); err != nil || res[0] != nil {
			t.Errorf("replica a: %v %v", res, err)
		}
	}}
	res, err := b.Writer(hook).WriteDecisions(ctx, []store.DecisionRecord{rec("from-b-1"), rec("from-b-2")})
	if err != nil || res[0] != nil || res[1] != nil {
		t.Fatalf("replica b: %v %v", res, err)
	}
	for _, id := range []string{"from-a", "from-b-1", "from-b-2"} {
		d, err := st.GetDecision(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := b.Open(ctx, "u-new", vault.DecisionAD(id), d.PII); err != nil || !bytes.Equal(got, secret) {
			t.Errorf("%s: %q %v", id, got, err)
		}
	}
}

// FuzzParseRing: any VERDICT_MASTER_KEY value is accepted or refused with an error, never a
// panic, and an accepted ring has an active key.
func FuzzParseRing(f *testing.F) {
	f.Add("k1:" + b64(1))
	f.Add("new:" + b64(2) + ",old:" + b64(1))
	f.Add(b64(3))
	f.Add(",,:")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := vault.ParseRing(s)
		if err != nil {
			return
		}
		if r.Active() == "" {
			t.Fatal("ring without an active key")
		}
	})
}

func TestCheckRing(t *testing.T) {
	ctx := t.Context()
	st := open(t)
	if err := vault.New(ring(t, "k1:"+b64(1)), st).CheckRing(ctx); err != nil {
		t.Fatalf("empty store: %v", err)
	}
	for _, u := range []string{"u1", "u2", "u3", "u4"} {
		mustSeal(t, vault.New(ring(t, "k1:"+b64(1)), st), u, "d-"+u)
	}
	for _, tc := range []struct {
		name, ring, wantErr string
	}{
		{"the key they were wrapped under", "k1:" + b64(1), ""},
		{"a new active key, the old one kept", "k2:" + b64(2) + ",k1:" + b64(1), ""},
		{"the same id, another key", "k1:" + b64(9), `master key "k1" does not unwrap the subject keys stored under that id`},
		{"the old key dropped before rotating", "k2:" + b64(2), `wrapped under master key "k1", which is not configured`},
	} {
		err := vault.New(ring(t, tc.ring), st).CheckRing(ctx)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: CheckRing = %v, want %q", tc.name, err, tc.wantErr)
		}
	}

	// One damaged stored key is not taken for a wrong master key when another unwraps (a
	// store of two subjects, so that both are in the sample).
	st2 := open(t)
	v := vault.New(ring(t, "k1:"+b64(1)), st2)
	mustSeal(t, v, "u1", "d1")
	mustSeal(t, v, "u2", "d2")
	k, err := st2.GetSubjectKey(ctx, "u1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st2.EraseSubject(ctx, "u1", "test", "c1"); err != nil {
		t.Fatal(err)
	}
	k.Wrapped[len(k.Wrapped)-1] ^= 1
	if _, err := st2.EnsureSubjectKeys(ctx, []store.SubjectKey{k}); err != nil {
		t.Fatal(err)
	}
	if sample, err := st2.SampleSubjectKeys(ctx, 3); err != nil || len(sample) != 2 {
		t.Fatalf("sample = %d keys, %v; want both", len(sample), err)
	}
	if err := v.CheckRing(ctx); err != nil {
		t.Fatalf("with one damaged key: %v", err)
	}
}

// lookupHook is the embedded store with a hook run inside each key lookup, after the read.
type lookupHook struct {
	store.SubjectKeys
	lookups int
	during  func()
}

func (h *lookupHook) LookupSubjectKeys(ctx context.Context, ids []string) ([]store.SubjectKey, error) {
	h.lookups++
	keys, err := h.SubjectKeys.LookupSubjectKeys(ctx, ids)
	if h.during != nil {
		h.during()
	}
	return keys, err
}

// A key read while an erasure was announced (Forget, ForgetAll) is not cached: the read
// may predate the erasure of that very key. The next seal reads it again; once a read
// completes undisturbed, the key is cached.
func TestKeyReadDuringAForgetIsNotCached(t *testing.T) {
	ctx := context.Background()
	st := open(t)
	r := ring(t, "k1:"+b64(1))
	if _, err := vault.New(r, st).Seal(ctx, "user-1", vault.DecisionAD("d0"), secret); err != nil {
		t.Fatal(err) // user-1 now has a stored key
	}
	h := &lookupHook{SubjectKeys: st}
	v := vault.New(r, h)
	for i, forget := range []func(){func() { v.Forget("someone-else") }, v.ForgetAll, nil, nil} {
		h.during = forget
		if _, err := v.Seal(ctx, "user-1", vault.DecisionAD("d1"), secret); err != nil {
			t.Fatal(err)
		}
		want := min(i+1, 3) // reads until one completes without a forget, then cached
		if h.lookups != want {
			t.Fatalf("seal %d: %d key lookups, want %d", i+1, h.lookups, want)
		}
	}
}

// failingBlobs deletes every object but those in fail, recording what it deleted.
type failingBlobs struct {
	fail    map[string]bool
	deleted []string
}

func (f *failingBlobs) Delete(_ context.Context, key string) error {
	if f.fail[key] {
		return errors.New("bucket unavailable")
	}
	f.deleted = append(f.deleted, key)
	return nil
}

// After an erasure deletes the subject's evidence objects, their pointers say "deleted";
// one whose object could not be deleted stays "uploaded", and erasing again retries it.
func TestEraseMarksDeletedEvidence(t *testing.T) {
	ctx := t.Context()
	st := open(t)
	v := vault.New(ring(t, "k1:"+b64(1)), st)
	now := time.Now().UTC()
	for _, s := range []struct{ id, user string }{{"ver-1", "u1"}, {"ver-2", "u2"}} {
		if _, _, err := st.CreateVerification(ctx, store.NewVerification{Verification: store.Verification{
			ID: s.id, UserID: s.user, Provider: "sandbox", Status: store.StatusInitiated}, Actor: "t"}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.UpdateVerification(ctx, s.id, store.VerificationChange{Actor: "t"}, func(x *store.Verification) error {
			for _, e := range []string{"a", "b"} {
				x.Evidence = append(x.Evidence, store.Evidence{ID: e, Kind: "selfie", BlobKey: "evidence/" + s.id + "/" + e,
					SHA256: "ab", ContentType: "image/jpeg", Size: 1, State: store.EvidenceUploaded, CreatedAt: now, UploadedAt: now})
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	states := func(id string) string {
		x, err := st.GetVerification(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range x.Evidence {
			out = append(out, e.State)
		}
		return strings.Join(out, ",")
	}

	blobs := &failingBlobs{fail: map[string]bool{"evidence/ver-1/b": true}}
	e, err := v.Erase(ctx, "u1", "admin", "req-1", blobs)
	if err != nil || e.EvidenceDeleted != 1 || e.EvidenceFailed != 1 {
		t.Fatalf("Erase = %+v, %v; want 1 deleted, 1 failed", e, err)
	}
	if got := states("ver-1"); got != "deleted,uploaded" {
		t.Errorf("evidence after erasure = %s, want deleted,uploaded (the failed one still listed)", got)
	}
	if got := states("ver-2"); got != "uploaded,uploaded" {
		t.Errorf("another subject's evidence = %s", got)
	}

	blobs.fail = nil
	e, err = v.Erase(ctx, "u1", "admin", "req-2", blobs)
	if err != nil || e.EvidenceDeleted != 1 || e.EvidenceFailed != 0 {
		t.Fatalf("Erase again = %+v, %v; want the failed object retried", e, err)
	}
	if got := states("ver-1"); got != "deleted,deleted" {
		t.Errorf("evidence after erasing again = %s", got)
	}
	if e, err = v.Erase(ctx, "u1", "admin", "req-3", blobs); err != nil || e.EvidenceDeleted != 0 || e.EvidenceFailed != 0 {
		t.Fatalf("third Erase = %+v, %v; want nothing left to delete", e, err)
	}
	if want := []string{"evidence/ver-1/a", "evidence/ver-1/b"}; !slices.Equal(blobs.deleted, want) {
		t.Errorf("objects deleted = %v, want %v", blobs.deleted, want)
	}
	var marked int
	evs, err := st.AuditEvents(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Type == store.EventSubjectEvidenceDeleted {
			marked++
			if ev.SubjectRef != store.SubjectRef("u1") || bytes.Contains(ev.Payload, []byte("u1")) {
				t.Errorf("event %+v", ev)
			}
		}
	}
	if marked != 2 {
		t.Errorf("%d subject.evidence_deleted events, want 2", marked)
	}
}

// A subject whose stored key this replica cannot unwrap (another replica put a new master
// key first too early, or the row is damaged) fails its own decisions only: the others
// written in the same batch are stored.
func TestWriterUnreadableKeyFailsOnlyItsSubject(t *testing.T) {
	ctx := t.Context()
	st := open(t)
	// Another replica, with master key k2 active, stores u-other's key under k2.
	mustSeal(t, vault.New(ring(t, "k2:"+b64(2)+",k1:"+b64(1)), st), "u-other", "d0")
	v := vault.New(ring(t, "k1:"+b64(1)), st)
	rec := func(id, user string) store.DecisionRecord {
		return store.DecisionRecord{ID: id, Action: "login", SubjectID: user, Outcome: "approve", PolicyVersion: "v", PolicyHash: "h",
			Input: []byte(`{"subject":{"id":"` + user + `"}}`), PIIPlain: secret, Response: []byte(`{}`)}
	}
	results, err := v.Writer(st).WriteDecisions(ctx, []store.DecisionRecord{rec("d1", "u1"), rec("d2", "u-other"), rec("d3", "u2")})
	if err != nil {
		t.Fatalf("WriteDecisions: %v; want per-record results", err)
	}
	if results[0] != nil || results[2] != nil {
		t.Fatalf("results = %v; want d1 and d3 stored", results)
	}
	if results[1] == nil || !strings.Contains(results[1].Error(), `"k2"`) {
		t.Fatalf("result of d2 = %v; want the unknown master key named", results[1])
	}
	for _, id := range []string{"d1", "d3"} {
		d, err := st.GetDecision(ctx, id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if _, err := v.Open(ctx, d.SubjectID, vault.DecisionAD(id), d.PII); err != nil {
			t.Fatalf("%s: Open: %v", id, err)
		}
	}
	if _, err := st.GetDecision(ctx, "d2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("d2: GetDecision = %v; want not found", err)
	}
}

// TestClaimRing: two processes started on a store without subject keys, with different
// keys under one id, both pass CheckRing; the second to claim the id is refused.
func TestClaimRing(t *testing.T) {
	ctx := t.Context()
	st := open(t)
	first := vault.New(ring(t, "k1:"+b64(1)), st)
	other := vault.New(ring(t, "k1:"+b64(9)), st)
	for _, v := range []*vault.Vault{first, other} {
		if err := v.CheckRing(ctx); err != nil {
			t.Fatalf("CheckRing on an empty store: %v", err)
		}
	}
	if err := first.ClaimRing(ctx, st); err != nil {
		t.Fatalf("first claim: %v", err)
	}
	if err := first.ClaimRing(ctx, st); err != nil {
		t.Fatalf("the same keys again: %v", err)
	}
	if err := other.ClaimRing(ctx, st); err == nil || !strings.Contains(err.Error(), `master key "k1" is not the key the store's first server recorded`) {
		t.Fatalf("another key under k1: %v", err)
	}
	// A rotation adds a new id: it is claimed by the first process that has it.
	if err := vault.New(ring(t, "k1:"+b64(1)+",k2:"+b64(2)), st).ClaimRing(ctx, st); err != nil {
		t.Fatalf("a new key after the active one: %v", err)
	}
	if err := vault.New(ring(t, "k2:"+b64(3)+",k1:"+b64(1)), st).ClaimRing(ctx, st); err == nil || !strings.Contains(err.Error(), `"k2"`) {
		t.Fatalf("another key under k2: %v", err)
	}
}
