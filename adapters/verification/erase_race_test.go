package verification_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verdict-engine/verdict/adapters/evidence"
	"github.com/verdict-engine/verdict/adapters/providers"
	"github.com/verdict-engine/verdict/adapters/verification"
	"github.com/verdict-engine/verdict/store"
	"github.com/verdict-engine/verdict/store/sqlite"
)

// erasingStore lands an erasure between a submission's sealing of its files and its
// state change: once armed, the next UpdateVerification first marks the session's
// evidence deleted, as an erasure's last step does after deleting the objects.
type erasingStore struct {
	*sqlite.Store
	armed atomic.Bool
}

func (s *erasingStore) UpdateVerification(ctx context.Context, id string, ch store.VerificationChange, fn func(*store.Verification) error) (store.Verification, error) {
	if s.armed.CompareAndSwap(true, false) {
		v, err := s.Store.GetVerification(ctx, id)
		if err != nil {
			return store.Verification{}, err
		}
		var items []store.DueEvidence
		for _, e := range v.Evidence {
			items = append(items, store.DueEvidence{VerificationID: id, EvidenceID: e.ID, BlobKey: e.BlobKey})
		}
		if _, err := s.Store.MarkSubjectEvidenceDeleted(ctx, v.UserID, "eraser", "corr-erase", items); err != nil {
			return store.Verification{}, err
		}
	}
	return s.Store.UpdateVerification(ctx, id, ch, fn)
}

// An erasure that lands while a submission seals the subject's files: the submission is
// refused, and the sealed copy it wrote does not outlive the pointer that says the file
// is gone.
func TestSubmitRacedByErasureLeavesNoSealedCopy(t *testing.T) {
	ctx := context.Background()
	st := &erasingStore{Store: openStore(t)}
	u, _ := url.Parse("http://verdict.test/v1/evidence-uploads")
	ev, err := evidence.OpenLocal(filepath.Join(t.TempDir(), "evidence"), u, bytes.Repeat([]byte("k"), 32), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ev.Close() })
	p := &fakeProvider{secret: []byte("webhook-secret-for-tests")}
	svc := verification.New(verification.Config{CallbackBase: "http://verdict.test"}, st, []providers.Provider{p}, ev, newVault(t, st.Store))

	c, err := svc.Create(ctx, verification.CreateRequest{UserID: "u-race", Provider: "fake", Actor: "t",
		Consent: &store.Consent{PolicyHash: "sha256:4f2a9c01", Locale: "en-GB", Scope: []string{"identity_verification"}, GrantedAt: time.Now().UTC()}})
	if err != nil {
		t.Fatal(err)
	}
	id := c.Verification.ID
	file := []byte("ZCANARY selfie bytes")
	sum := sha256.Sum256(file)
	v, tickets, err := svc.AddEvidence(ctx, id, []verification.EvidenceRequest{{Kind: "selfie", ContentType: "image/png",
		SHA256: hex.EncodeToString(sum[:]), Size: int64(len(file))}}, "t", "corr")
	if err != nil {
		t.Fatal(err)
	}
	tu, err := url.Parse(tickets[0].URL)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.ReceiveUpload(ctx, tu, http.MethodPut, "image/png", int64(len(file)), bytes.NewReader(file)); err != nil {
		t.Fatalf("upload: %v", err)
	}
	key := v.Evidence[0].BlobKey

	st.armed.Store(true)
	if _, err := svc.Submit(ctx, id, "t", "corr"); !errors.Is(err, verification.ErrEvidenceDeleted) {
		t.Fatalf("Submit raced by an erasure = %v, want ErrEvidenceDeleted", err)
	}
	if b, err := ev.ReadAll(ctx, key); !errors.Is(err, evidence.ErrMissing) {
		t.Fatalf("the sealed copy outlived the erasure (%d bytes, %v)", len(b), err)
	}
}
