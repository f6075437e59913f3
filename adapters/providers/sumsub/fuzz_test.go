package sumsub

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // Sumsub's legacy HMAC_SHA1_HEX
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"hash"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/verdict-engine/verdict/adapters/providers"
	"github.com/verdict-engine/verdict/store"
)

// validSignature is an independent check that digest is the HMAC of body under one of the
// secrets with the named algorithm (default SHA-256), written without the adapter's helpers.
func validSignature(algHeader, digest string, body []byte, secrets ...string) bool {
	var h func() hash.Hash
	switch strings.ToUpper(strings.TrimSpace(algHeader)) {
	case "", AlgSHA256:
		h = sha256.New
	case AlgSHA1:
		h = sha1.New
	case AlgSHA512:
		h = sha512.New
	default:
		return false
	}
	got, err := hex.DecodeString(strings.TrimSpace(digest))
	if err != nil {
		return false
	}
	for _, s := range secrets {
		m := hmac.New(h, []byte(s))
		m.Write(body)
		if hmac.Equal(m.Sum(nil), got) {
			return true
		}
	}
	return false
}

func FuzzVerifyWebhook(f *testing.F) {
	for _, b := range []string{reviewedGreen, reviewedRedRetry, reviewedRedFinal, simple("applicantOnHold", "onHold"), `{}`, `null`, ``} {
		for _, alg := range []string{"", AlgSHA1, AlgSHA256, AlgSHA512, "HMAC_MD5_HEX"} {
			f.Add([]byte(b), alg, providers.HexHMAC(providers.SHA256, []byte(webhookSecret), []byte(b)), true)
			f.Add([]byte(b), alg, "00", false)
		}
	}
	p := webhookProvider()
	f.Fuzz(func(t *testing.T, body []byte, alg, digest string, sign bool) {
		h := http.Header{}
		if alg != "" {
			h.Set(HeaderDigestAlg, alg)
		}
		if sign {
			// Sign correctly so the fuzzer reaches the parser behind the signature check.
			if a, ok := digestAlgs[strings.ToUpper(strings.TrimSpace(alg))]; ok || strings.TrimSpace(alg) == "" {
				if !ok {
					a = providers.SHA256
				}
				digest = providers.HexHMAC(a, []byte(oldSecret), body)
			}
		}
		if digest != "" {
			h.Set(HeaderDigest, digest)
		}
		ev, err := p.VerifyWebhook(h, body, now)
		valid := validSignature(h.Get(HeaderDigestAlg), h.Get(HeaderDigest), body, webhookSecret, oldSecret)
		if err == nil && !valid {
			t.Fatalf("accepted without a valid signature: alg %q digest %q", alg, digest)
		}
		if valid && err != nil && !errors.Is(err, providers.ErrMalformedPayload) {
			t.Fatalf("valid signature rejected: %v", err)
		}
		if !valid && err != nil && !errors.Is(err, providers.ErrBadSignature) && !errors.Is(err, providers.ErrMissingSignature) {
			t.Fatalf("invalid signature with error %v", err)
		}
		if err != nil && ev.ID != "" {
			t.Fatalf("event with error")
		}
	})
}

func FuzzParsePayload(f *testing.F) {
	for _, b := range []string{reviewedGreen, reviewedRedRetry, reviewedRedFinal, simple("applicantCreated", "init"),
		simple("applicantReviewed", "completed"), `{"applicantId":"a","type":"t","createdAtMs":"2020-02-21 13:23:19"}`,
		`{"applicantId":"a","type":"applicantReviewed","reviewResult":{"reviewAnswer":"RED","rejectLabels":["x y","FORGERY"]}}`,
		`null`, `[]`, `{"applicantId":1}`} {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := parsePayload(body)
		if err != nil {
			if !errors.Is(err, providers.ErrMalformedPayload) {
				t.Fatalf("error %v does not wrap ErrMalformedPayload", err)
			}
			return
		}
		if len(ev.ID) != 64 || ev.ProviderRef == "" || ev.Type == "" {
			t.Fatalf("incomplete event %+v", ev)
		}
		if ev.Status != "" && !store.ValidStatus(ev.Status) {
			t.Fatalf("status %q is not canonical", ev.Status)
		}
		if len(ev.ReasonCodes) > maxReasonCodes {
			t.Fatalf("%d reason codes", len(ev.ReasonCodes))
		}
		for _, c := range ev.ReasonCodes {
			if !validCode(c) {
				t.Fatalf("reason code %q", c)
			}
		}
		if !ev.OccurredAt.IsZero() && ev.OccurredAt.Location() != time.UTC {
			t.Fatalf("OccurredAt %v", ev.OccurredAt)
		}
		again, err := parsePayload(body)
		if err != nil || again.ID != ev.ID || !again.OccurredAt.Equal(ev.OccurredAt) {
			t.Fatalf("not deterministic: %v, %q vs %q", err, again.ID, ev.ID)
		}
	})
}

func FuzzParseCreatedAt(f *testing.F) {
	for _, s := range []string{"2021-05-14 16:00:25.032", "2021-05-14 16:00:25", "0000-01-01 00:00:00.000",
		"9999-12-31 23:59:59.999999999", "2021-02-29 00:00:00.000", "2021-05-14T16:00:25Z", "", "2021-05-14 16:00:25.0320000000001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := parseCreatedAt(s)
		if err != nil {
			return
		}
		if tm.Location() != time.UTC {
			t.Fatalf("%q: location %v", s, tm.Location())
		}
		back, err := parseCreatedAt(tm.Format(createdAtLayout))
		if err != nil || !back.Equal(tm) {
			t.Fatalf("%q: round trip %v → %v, %v", s, tm, back, err)
		}
	})
}
