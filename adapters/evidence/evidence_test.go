package evidence_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	_ "gocloud.dev/blob/s3blob"

	"github.com/verdict-engine/verdict/adapters/evidence"
)

func TestLocalUploadRoundTrip(t *testing.T) {
	ctx := context.Background()
	base, _ := url.Parse("http://verdict.test/v1/evidence-uploads")
	s, err := evidence.OpenLocal(t.TempDir(), base, bytes.Repeat([]byte("k"), 32), 64)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	raw, err := s.UploadURL(ctx, "evidence/ver_1/evd_1", "image/png", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(raw)
	data := []byte("png bytes")
	sum := sha256.Sum256(data)
	// A stand-in for the vault: sealing prefixes, opening checks and strips the prefix.
	seal := func(b []byte) ([]byte, error) { return append([]byte("sealed:"), b...), nil }
	open := func(b []byte) ([]byte, error) {
		if !bytes.HasPrefix(b, []byte("sealed:")) {
			return nil, errors.New("not sealed")
		}
		return b[len("sealed:"):], nil
	}
	check := func(sha string) error {
		return s.CheckAndSeal(ctx, "evidence/ver_1/evd_1", sha, int64(len(data)), seal, open)
	}
	if err := check(hex.EncodeToString(sum[:])); !errors.Is(err, evidence.ErrMissing) {
		t.Fatalf("check before upload: %v", err)
	}
	for name, tc := range map[string]struct {
		u          *url.URL
		method, ct string
		body       []byte
		want       error
	}{
		"other method":       {u, "POST", "image/png", data, evidence.ErrBadURL},
		"other content type": {u, "PUT", "image/jpeg", data, evidence.ErrBadURL},
		"forged signature":   {mutate(u, "signature", "AAAA"), "PUT", "image/png", data, evidence.ErrBadURL},
		"other object":       {mutate(u, "obj", "evidence/ver_2/evd_9"), "PUT", "image/png", data, evidence.ErrBadURL},
		"too large":          {u, "PUT", "image/png", bytes.Repeat([]byte("x"), 65), evidence.ErrTooLarge},
	} {
		if _, err := s.Receive(ctx, tc.u, tc.method, tc.ct, int64(len(tc.body)), bytes.NewReader(tc.body), nil); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	var asked []string
	accept := func(key string) error { asked = append(asked, key); return nil }
	if key, err := s.Receive(ctx, u, "PUT", "image/png", int64(len(data)), bytes.NewReader(data), accept); err != nil || key != "evidence/ver_1/evd_1" {
		t.Fatalf("receive: %q %v", key, err)
	}
	if len(asked) != 1 || asked[0] != "evidence/ver_1/evd_1" {
		t.Fatalf("accept was asked about %q, want the object's key once", asked)
	}
	if err := check(hex.EncodeToString(sum[:])); err != nil {
		t.Fatalf("check: %v", err)
	}
	if stored, err := s.ReadAll(ctx, "evidence/ver_1/evd_1"); err != nil || string(stored) != "sealed:png bytes" {
		t.Fatalf("stored object after sealing: %q %v", stored, err)
	}
	if err := check(hex.EncodeToString(sum[:])); err != nil {
		t.Fatalf("check of the object sealed already (a retried submission): %v", err)
	}
	// The URL is still authentic; its owner refuses the upload and nothing is written.
	closed := errors.New("submitted already")
	if _, err := s.Receive(ctx, u, "PUT", "image/png", int64(len(data)), bytes.NewReader(data),
		func(string) error { return closed }); !errors.Is(err, closed) {
		t.Fatalf("receive refused by accept: %v, want accept's error", err)
	}
	if stored, err := s.ReadAll(ctx, "evidence/ver_1/evd_1"); err != nil || string(stored) != "sealed:png bytes" {
		t.Fatalf("stored object after a refused upload: %q %v", stored, err)
	}
	if err := check(strings.Repeat("0", 64)); !errors.Is(err, evidence.ErrMismatch) {
		t.Fatalf("check with another hash: %v", err)
	}
	if err := s.Delete(ctx, "evidence/ver_1/evd_1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "evidence/ver_1/evd_1"); err != nil {
		t.Fatalf("deleting a missing object: %v", err)
	}
}

func mutate(u *url.URL, k, v string) *url.URL {
	c := *u
	q := c.Query()
	q.Set(k, v)
	c.RawQuery = q.Encode()
	return &c
}

// An S3 bucket signs upload URLs itself (SigV4), offline: the client uploads straight to S3.
func TestS3PresignedUpload(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE00")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "example-secret-example-secret-example-00")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	s, err := evidence.Open(context.Background(), "s3://verdict-evidence?region=eu-west-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Local() {
		t.Fatal("an S3 bucket is not served by Verdict")
	}
	raw, err := s.UploadURL(context.Background(), "evidence/ver_1/evd_1", "image/jpeg", 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(raw)
	if err != nil || !strings.Contains(u.Host, "verdict-evidence") || u.Query().Get("X-Amz-Signature") == "" || u.Query().Get("X-Amz-Expires") != "900" {
		t.Fatalf("presigned URL: %s", raw)
	}
}
