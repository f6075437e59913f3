package sandbox

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/verdict-engine/verdict/adapters/providers"
	"github.com/verdict-engine/verdict/store"
)

func headers(m map[string]string) http.Header {
	h := http.Header{}
	for k, v := range m {
		h.Set(k, v)
	}
	return h
}

func TestStandardWebhooksSignature(t *testing.T) {
	p := New(Config{Secrets: providers.ParseSecrets("new-secret-0123456789,old-secret-0123456789")})
	defer p.Close()
	now := time.Now()
	body := []byte(`{"type":"verification.decided","timestamp":"2026-11-23T10:00:00Z","data":{"session_id":"sbx_1","user_id":"u","status":"approved","score":96,"reason_codes":[]}}`)
	good := headers(Sign([]byte("new-secret-0123456789"), "msg_1", now.Unix(), body))
	ev, err := p.VerifyWebhook(good, body, now)
	if err != nil || ev.Status != store.StatusApproved || ev.ProviderRef != "sbx_1" || ev.ID != "msg_1" {
		t.Fatalf("%+v %v", ev, err)
	}
	old := headers(Sign([]byte("old-secret-0123456789"), "msg_1", now.Unix(), body))
	if _, err := p.VerifyWebhook(old, body, now); err != nil {
		t.Fatalf("rotated secret refused: %v", err)
	}
	cases := []struct {
		name string
		h    http.Header
		body []byte
		now  time.Time
		want error
	}{
		{"wrong secret", headers(Sign([]byte("other"), "msg_1", now.Unix(), body)), body, now, providers.ErrBadSignature},
		{"changed byte", good, append([]byte{' '}, body...), now, providers.ErrBadSignature},
		{"missing", http.Header{}, body, now, providers.ErrMissingSignature},
		{"stale", good, body, now.Add(6 * time.Minute), providers.ErrStaleTimestamp},
		{"future", good, body, now.Add(-6 * time.Minute), providers.ErrStaleTimestamp},
	}
	for _, tc := range cases {
		if _, err := p.VerifyWebhook(tc.h, tc.body, tc.now); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestOutcome(t *testing.T) {
	for user, want := range map[string]string{"u1": "approved", "u-reject": "rejected", "review-me": "pending_review", "resubmit": "needs_resubmission"} {
		if got, _, _ := Outcome(user); got != want {
			t.Errorf("%s: %s, want %s", user, got, want)
		}
	}
}

func FuzzVerifyWebhook(f *testing.F) {
	p := New(Config{Secrets: providers.Secrets{[]byte("fuzz-secret")}})
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"type":"verification.decided","timestamp":"2026-11-23T10:00:00Z","data":{"session_id":"s","status":"approved"}}`)
	h := Sign([]byte("fuzz-secret"), "msg", now.Unix(), body)
	f.Add(h["webhook-id"], h["webhook-timestamp"], h["webhook-signature"], body)
	f.Add("", "x", "v1,", []byte("{"))
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		ev, err := p.VerifyWebhook(headers(map[string]string{"webhook-id": id, "webhook-timestamp": ts, "webhook-signature": sig}), body, now)
		if err == nil && ev.ProviderRef == "" {
			t.Fatal("accepted event without a session")
		}
	})
}

func FuzzParsePayload(f *testing.F) {
	f.Add([]byte(`{"type":"verification.decided","timestamp":"2026-11-23T10:00:00Z","data":{"session_id":"s","status":"approved"}}`))
	f.Add([]byte(`{"data":[]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := ParsePayload("id", body)
		if err == nil && (!store.ValidStatus(ev.Status) || ev.ProviderRef == "") {
			t.Fatalf("accepted %+v", ev)
		}
	})
}
