package onfido

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/verdict-engine/verdict/adapters/providers"
	"github.com/verdict-engine/verdict/store"
)

const fuzzSecret = "fuzz-secret"

// FuzzVerifyWebhook feeds random signature headers and bodies: VerifyWebhook never panics,
// and whenever it returns no error the header was the body's HMAC under the secret.
func FuzzVerifyWebhook(f *testing.F) {
	f.Add(docVectorSig, []byte(docVectorBody), false)
	f.Add("", []byte(docVectorBody), true)
	f.Add("zz", []byte(`{}`), true)
	f.Add(" "+strings.ToUpper(docVectorSig)+" ", []byte(docVectorBody), false)
	f.Add("", []byte(workflowRunBody("approved", `["a"]`)), true)
	p := webhookProvider(fuzzSecret, docVectorSecret)
	f.Fuzz(func(t *testing.T, sig string, body []byte, signIt bool) {
		if signIt {
			sig = sign(fuzzSecret, body)
		}
		h := http.Header{}
		h.Set(SignatureHeader, sig)
		ev, err := p.VerifyWebhook(h, body, now)
		if err != nil {
			if !errors.Is(err, providers.ErrMissingSignature) && !errors.Is(err, providers.ErrBadSignature) && !errors.Is(err, providers.ErrMalformedPayload) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		if !providers.MatchHexHMAC(providers.SHA256, providers.Secrets{[]byte(fuzzSecret), []byte(docVectorSecret)}, body, sig) {
			t.Fatalf("accepted a body whose signature %q does not match", sig)
		}
		checkEvent(t, ev)
	})
}

// FuzzParseEvent feeds random bodies to the payload parser directly (no signature): it
// never panics, and every Event it returns is well formed.
func FuzzParseEvent(f *testing.F) {
	f.Add([]byte(docVectorBody))
	f.Add([]byte(workflowRunBody("declined", `["Document consider","face_mismatch"]`)))
	f.Add([]byte(`{"payload":{"action":"workflow_task.started","object":{"id":"t"},"resource":{"workflow_run_id":"r"}}}`))
	f.Add([]byte(`{"payload":{"action":"check.completed","object":{"id":"c","result":"consider"}}}`))
	f.Add([]byte(`{"payload":{"action":"check.completed","object":{"id":42}}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := parseEvent(body)
		if err != nil {
			if !errors.Is(err, providers.ErrMalformedPayload) {
				t.Fatalf("error does not wrap ErrMalformedPayload: %v", err)
			}
			return
		}
		checkEvent(t, ev)
		again, err := parseEvent(body)
		if err != nil || again.ID != ev.ID {
			t.Fatalf("parsing twice gave %q, %v after %q", again.ID, err, ev.ID)
		}
	})
}

func checkEvent(t *testing.T, ev providers.Event) {
	t.Helper()
	if !strings.HasPrefix(ev.ID, "onfido:") || len(ev.ID) != len("onfido:")+32 {
		t.Fatalf("bad ID %q", ev.ID)
	}
	if !validID(ev.ProviderRef) {
		t.Fatalf("bad ProviderRef %q", ev.ProviderRef)
	}
	if ev.UserID != "" && !validID(ev.UserID) {
		t.Fatalf("bad UserID %q", ev.UserID)
	}
	if ev.Type != "unknown" && !actionRE.MatchString(ev.Type) {
		t.Fatalf("bad Type %q", ev.Type)
	}
	if ev.Status != "" && !store.ValidStatus(ev.Status) {
		t.Fatalf("non-canonical status %q", ev.Status)
	}
	if ev.Fetch && ev.Status != "" {
		t.Fatalf("Fetch with a status %q", ev.Status)
	}
	for _, c := range ev.ReasonCodes {
		if c == "" || len(c) > maxReasonLen+len("WORKFLOW_REASON_") || strings.Trim(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != "" {
			t.Fatalf("bad reason code %q", c)
		}
	}
	if ev.Score != nil {
		t.Fatalf("score set: Onfido gives none")
	}
}
