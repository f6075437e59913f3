package verification

import (
	"context"
	"fmt"
	"hash/maphash"
	"io"
	"net/url"
	"strings"
	"sync"

	"github.com/verdict-engine/verdict/store"
)

// ReceiveUpload stores a file PUT to one of the signed upload URLs of a local evidence
// bucket. The URL proves who may upload which object, but it stays authentic until it
// expires; the session decides whether the object may still be written: only while the
// session collects evidence and the file is still pending. Once Submit has checked a file
// against its hash and sealed it, its URL is refused with an error wrapping ErrNotCapturing,
// so an upload can neither put plaintext back into the bucket nor swap evidence that was
// verified. The check and the write hold the session's lock, which Submit holds while it
// seals, so neither can slip between the other's check and write.
//
// Errors: evidence.ErrBadURL and evidence.ErrTooLarge from the bucket, ErrNotCapturing (wrapped)
// as above, store.ErrNotFound (wrapped) for a session that no longer exists (erased),
// ErrNoEvidenceStore without a local bucket.
func (s *Service) ReceiveUpload(ctx context.Context, u *url.URL, method, contentType string, size int64, body io.Reader) error {
	if s.evidence == nil || !s.evidence.Local() {
		return ErrNoEvidenceStore
	}
	var unlock func()
	defer func() {
		if unlock != nil {
			unlock()
		}
	}()
	_, err := s.evidence.Receive(ctx, u, method, contentType, size, body, func(key string) error {
		id, _, ok := splitBlobKey(key)
		if !ok {
			return fmt.Errorf("%w: object %q is not a session's evidence", ErrNotCapturing, key)
		}
		unlock = s.locks.lock(id)
		v, err := s.store.GetVerification(ctx, id)
		if err != nil {
			return err
		}
		return uploadable(v, key)
	})
	return err
}

// uploadable reports whether the evidence stored under key may be written now.
func uploadable(v store.Verification, key string) error {
	switch v.Status {
	case store.StatusInitiated, store.StatusCapturing, store.StatusNeedsResubmission:
	default:
		return fmt.Errorf("%w (status %s): this upload URL is no longer accepted", ErrNotCapturing, v.Status)
	}
	for _, e := range v.Evidence {
		if e.BlobKey != key {
			continue
		}
		switch e.State {
		case store.EvidencePending:
		case store.EvidenceDeleted:
			return fmt.Errorf("%w: evidence %s was deleted (erasure or retention); its upload URL is no longer accepted", ErrNotCapturing, e.ID)
		default:
			return fmt.Errorf("%w: evidence %s was checked and sealed at submission; its upload URL is no longer accepted", ErrNotCapturing, e.ID)
		}
		return nil
	}
	return fmt.Errorf("%w: the session declares no evidence under this upload URL", ErrNotCapturing)
}

// splitBlobKey splits an evidence object key, "evidence/<verification id>/<evidence id>".
func splitBlobKey(key string) (verificationID, evidenceID string, ok bool) {
	rest, ok := strings.CutPrefix(key, "evidence/")
	if !ok {
		return "", "", false
	}
	verificationID, evidenceID, ok = strings.Cut(rest, "/")
	if !ok || verificationID == "" || evidenceID == "" || strings.Contains(evidenceID, "/") {
		return "", "", false
	}
	return verificationID, evidenceID, true
}

// sessionLocks serializes the evidence writes of one session within this process: uploads
// received by Verdict and Submit's sealing. Striped, so it needs no cleanup.
type sessionLocks struct {
	seed    maphash.Seed
	stripes [64]sync.Mutex
}

func newSessionLocks() *sessionLocks { return &sessionLocks{seed: maphash.MakeSeed()} }

// lock locks the session's stripe and returns its unlock.
func (l *sessionLocks) lock(verificationID string) func() {
	m := &l.stripes[maphash.String(l.seed, verificationID)%uint64(len(l.stripes))]
	m.Lock()
	return m.Unlock
}
