package veriff

import (
	"encoding/hex"
	"errors"
	"net/http"
	"testing"

	"github.com/verdict-engine/verdict/adapters/providers"
	"github.com/verdict-engine/verdict/store"
)

func seedBodies() []string {
	return []string{
		decisionFixture("approved", 9001, "null", `"2019-11-06T07:18:36.916Z"`),
		decisionFixture("declined", 9102, `"102"`, `null`),
		decisionFixture("", 9121, "539", `"2019-11-06T07:18:36+02:00"`),
		eventFixture("started", 7001),
		eventFixture("submitted", 7002),
		`{"id":"abc","action":"submitted","time":"2023-10-27T10:00:02.998Z"}`,
		`{"status":"success","verification":null}`,
		`{"verification":{"id":"abc","reasonCode":1e3}}`,
		`{"data":{},"eventType":"user-status.created"}`,
		`[]`, `null`, ``, `{`,
	}
}

// checkEvent holds for every Event the adapter returns.
func checkEvent(t *testing.T, ev providers.Event) {
	t.Helper()
	if _, err := hex.DecodeString(ev.ID); err != nil || len(ev.ID) != 64 {
		t.Fatalf("ID %q is not a hex SHA-256", ev.ID)
	}
	if ev.Status != "" && !store.ValidStatus(ev.Status) {
		t.Fatalf("status %q is not canonical", ev.Status)
	}
	if ev.Status != "" && ev.ProviderRef == "" {
		t.Fatalf("status %q without a ProviderRef", ev.Status)
	}
	if !validUserID(ev.UserID) {
		t.Fatalf("UserID %q is not a user id", ev.UserID)
	}
	if ev.ProviderRef != "" && !validRef(ev.ProviderRef) {
		t.Fatalf("ProviderRef %q is not a valid session id", ev.ProviderRef)
	}
}

func FuzzVerifyWebhook(f *testing.F) {
	for _, b := range seedBodies() {
		f.Add([]byte(b), "", testAPIKey, true)
		f.Add([]byte(b), providers.HexHMAC(providers.SHA256, []byte(hookSecret), []byte(b)), "other", false)
		f.Add([]byte(b), "00", testAPIKey, false)
	}
	p := hookProvider()
	f.Fuzz(func(t *testing.T, body []byte, sig, authClient string, signIt bool) {
		if signIt {
			sig = providers.HexHMAC(providers.SHA256, []byte(hookSecret), body)
		}
		h := http.Header{}
		h.Set("X-HMAC-SIGNATURE", sig)
		h.Set("X-AUTH-CLIENT", authClient)
		ev, err := p.VerifyWebhook(h, body, received)
		if err != nil {
			if !errors.Is(err, providers.ErrMissingSignature) && !errors.Is(err, providers.ErrBadSignature) && !errors.Is(err, providers.ErrMalformedPayload) {
				t.Fatalf("error of no documented class: %v", err)
			}
			return
		}
		if !providers.MatchHexHMAC(providers.SHA256, p.secrets, body, sig) {
			t.Fatalf("accepted without a valid signature: %q", sig)
		}
		if h.Get("X-AUTH-CLIENT") != testAPIKey {
			t.Fatalf("accepted with X-AUTH-CLIENT %q", authClient)
		}
		checkEvent(t, ev)
	})
}

func FuzzParsePayload(f *testing.F) {
	for _, b := range seedBodies() {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := parsePayload(body, received)
		if err != nil {
			if !errors.Is(err, providers.ErrMalformedPayload) {
				t.Fatalf("error is not ErrMalformedPayload: %v", err)
			}
			return
		}
		checkEvent(t, ev)
		again, err := parsePayload(body, received)
		if err != nil || again.ID != ev.ID || again.Status != ev.Status {
			t.Fatalf("not deterministic: %+v then %+v, %v", ev, again, err)
		}
	})
}
