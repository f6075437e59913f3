// Package evidence keeps verification evidence (document images, selfies) in blob storage
// through gocloud.dev/blob, never in the store: it issues short-lived signed upload URLs,
// checks an uploaded object against the SHA-256 the client declared and seals it, and
// deletes objects.
//
// The embedded default is a local directory (fileblob) whose signed URLs point back at
// Verdict, which receives the upload itself (Receive). In production any bucket
// gocloud.dev can open with a signed-URL capable driver (s3://, gs://) takes the uploads
// directly and Verdict reads each object back to check its hash and seal it.
package evidence

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/gcerrors"
)

// Errors.
var (
	// ErrMissing: the object has not been uploaded.
	ErrMissing = errors.New("evidence object not uploaded")
	// ErrMismatch: the object's size or SHA-256 differs from what was declared.
	ErrMismatch = errors.New("evidence object does not match its declared hash or size")
	// ErrBadURL: an upload URL that is not authentic, has expired, or is used with another
	// method or content type than it was signed for.
	ErrBadURL = errors.New("upload URL invalid or expired")
	// ErrTooLarge: an upload larger than the limit.
	ErrTooLarge = errors.New("upload too large")
)

// Store is an evidence bucket.
type Store struct {
	bucket  *blob.Bucket
	signer  *fileblob.URLSignerHMAC // local buckets only: Verdict receives the uploads
	maxSize int64
}

// DefaultMaxSize is the largest evidence object accepted (10 MiB).
const DefaultMaxSize = 10 << 20

// OpenLocal opens (creating it) a directory bucket whose signed URLs have the form
// uploadURL?obj=...&expiry=...&method=PUT&signature=..., where uploadURL is the absolute URL
// of Verdict's upload endpoint. key signs the URLs (at least 32 bytes).
func OpenLocal(dir string, uploadURL *url.URL, key []byte, maxSize int64) (*Store, error) {
	if len(key) < 32 {
		return nil, errors.New("evidence: URL signing key must be at least 32 bytes")
	}
	signer := fileblob.NewURLSignerHMAC(uploadURL, key)
	b, err := fileblob.OpenBucket(dir, &fileblob.Options{URLSigner: signer, CreateDir: true, NoTempDir: true, DirFileMode: 0o700})
	if err != nil {
		return nil, fmt.Errorf("evidence: open %s: %w", dir, err)
	}
	return &Store{bucket: b, signer: signer, maxSize: orDefault(maxSize)}, nil
}

// Open opens a bucket by URL (s3://bucket?region=..., gs://bucket, or file:///dir for a
// directory without Verdict-served uploads) with the drivers linked into the binary.
func Open(ctx context.Context, bucketURL string, maxSize int64) (*Store, error) {
	b, err := blob.OpenBucket(ctx, bucketURL)
	if err != nil {
		return nil, fmt.Errorf("evidence: open bucket: %w", err)
	}
	return &Store{bucket: b, maxSize: orDefault(maxSize)}, nil
}

func orDefault(n int64) int64 {
	if n <= 0 {
		return DefaultMaxSize
	}
	return n
}

// MaxSize is the largest object accepted.
func (s *Store) MaxSize() int64 { return s.maxSize }

// Local reports whether Verdict receives uploads itself (Receive).
func (s *Store) Local() bool { return s.signer != nil }

// UploadURL returns a URL the client PUTs the object to, with the given Content-Type,
// valid for ttl. A local bucket binds the content type into the signature.
func (s *Store) UploadURL(ctx context.Context, key, contentType string, ttl time.Duration) (string, error) {
	opts := &blob.SignedURLOptions{Method: "PUT", Expiry: ttl, ContentType: contentType, EnforceAbsentContentType: contentType == ""}
	if !s.Local() {
		// Not every driver can bind the content type into the signature (S3 with the AWS
		// SDK v2 cannot); the object's SHA-256 is checked at submission whatever it is.
		opts = &blob.SignedURLOptions{Method: "PUT", Expiry: ttl}
	}
	u, err := s.bucket.SignedURL(ctx, key, opts)
	if err != nil {
		return "", fmt.Errorf("evidence: sign upload URL: %w", err)
	}
	return u, nil
}

// Receive stores an upload made to a URL from UploadURL (local buckets only). It checks
// the URL's signature and expiry, the method and content type it was signed for, and the
// size limit, then asks accept (when not nil) whether the object may still be written,
// returning accept's error as is when it may not, and writes the object atomically. A URL
// stays authentic until it expires; accept is where its owner refuses an upload to an
// object that was already checked and sealed. It returns the object key.
func (s *Store) Receive(ctx context.Context, u *url.URL, method, contentType string, contentLength int64, body io.Reader,
	accept func(key string) error) (string, error) {
	if s.signer == nil {
		return "", ErrBadURL
	}
	key, err := s.signer.KeyFromURL(ctx, u)
	if err != nil {
		return "", ErrBadURL
	}
	q := u.Query()
	if q.Get("method") != method || q.Get("contentType") != contentType {
		return "", ErrBadURL
	}
	if contentLength > s.maxSize {
		return "", ErrTooLarge
	}
	if accept != nil {
		if err := accept(key); err != nil {
			return "", err
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := s.bucket.NewWriter(wctx, key, &blob.WriterOptions{ContentType: contentType})
	if err != nil {
		return "", fmt.Errorf("evidence: write: %w", err)
	}
	n, err := io.Copy(w, io.LimitReader(body, s.maxSize+1))
	if err == nil && n > s.maxSize {
		err = ErrTooLarge
	}
	if err != nil {
		cancel() // discards the partial object
		_ = w.Close()
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", fmt.Errorf("evidence: write: %w", err)
	}
	return key, nil
}

// CheckAndSeal reads the object, compares its size and SHA-256 (hex) with the declared
// ones, then replaces it by seal(its bytes), so that the bucket keeps only ciphertext. An object that was sealed already (open succeeds and
// the result matches the declared size and hash) passes unchanged, so a submission that
// failed after sealing can be retried.
func (s *Store) CheckAndSeal(ctx context.Context, key, sha256Hex string, size int64,
	seal, open func([]byte) ([]byte, error)) error {
	r, err := s.bucket.NewReader(ctx, key, nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return ErrMissing
	}
	if err != nil {
		return fmt.Errorf("evidence: read: %w", err)
	}
	// A sealed object is the plaintext plus a few dozen bytes of nonce and tag.
	data, err := io.ReadAll(io.LimitReader(r, s.maxSize+1024))
	r.Close()
	if err != nil {
		return fmt.Errorf("evidence: read: %w", err)
	}
	if !matches(data, sha256Hex, size) {
		if pt, err := open(data); err == nil && matches(pt, sha256Hex, size) {
			return nil // sealed by an earlier attempt
		}
		return fmt.Errorf("%w: size %d, declared %s", ErrMismatch, len(data), strconv.FormatInt(size, 10))
	}
	sealed, err := seal(data)
	if err != nil {
		return fmt.Errorf("evidence: seal: %w", err)
	}
	if err := s.bucket.WriteAll(ctx, key, sealed, &blob.WriterOptions{ContentType: "application/octet-stream"}); err != nil {
		return fmt.Errorf("evidence: write sealed object: %w", err)
	}
	return nil
}

// ReadAll returns an object's bytes as stored (sealed, after CheckAndSeal).
func (s *Store) ReadAll(ctx context.Context, key string) ([]byte, error) {
	b, err := s.bucket.ReadAll(ctx, key)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, ErrMissing
	}
	if err != nil {
		return nil, fmt.Errorf("evidence: read: %w", err)
	}
	return b, nil
}

func matches(data []byte, sha256Hex string, size int64) bool {
	if int64(len(data)) != size {
		return false
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]) == sha256Hex
}

// Delete removes an object; a missing object is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.bucket.Delete(ctx, key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("evidence: delete: %w", err)
	}
	return nil
}

// Close closes the bucket.
func (s *Store) Close() error { return s.bucket.Close() }
