package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/verdict-engine/verdict/adapters/providers"
	"github.com/verdict-engine/verdict/store/sqlite"
)

// syncBuffer is a bytes.Buffer safe for the server's concurrent log writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestWebhookPIIStaysOut sends a Veriff decision webhook carrying a person's name, id
// number, document number and address, valid and tampered, plus a Sumsub one with
// free-text comments, through a real server logging at debug level, and checks that none
// of it reaches a log line, a metric, an audit event or an error body.
func TestWebhookPIIStaysOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	const veriffSecret, sumsubSecret = "veriff-webhook-secret-0123", "sumsub-webhook-secret-0123"
	env := map[string]string{"VERDICT_VERIFF_WEBHOOK_SECRET": veriffSecret, "VERDICT_SUMSUB_WEBHOOK_SECRET": sumsubSecret}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logs := &syncBuffer{}
	go func() {
		done <- run(ctx, []string{"serve", "--dev", "--addr", addr, "--data-dir", dir, "--log-level", "debug"},
			func(k string) string { return env[k] }, io.Discard, logs)
	}()
	base := "http://" + addr
	waitReady(t, base)

	canaries := []string{"CANARYFIRST", "CANARYLAST", "98765432100", "CANARYDOC123", "77 Canary Wharf Road", "canary-user-1", "Canary moderator comment", veriffSecret, sumsubSecret}
	veriffBody := []byte(`{"status":"success","verification":{"id":"0f5c4a52-2b7e-4c59-9c1e-7c4d2f6a9b11","attemptId":"a1","vendorData":"canary-user-1",
"status":"approved","code":9001,"reason":null,"reasonCode":null,"decisionTime":"2026-11-23T10:00:00.000Z","acceptanceTime":"2026-11-23T09:55:00.000Z",
"person":{"firstName":"CANARYFIRST","lastName":"CANARYLAST","idNumber":"98765432100","addresses":[{"fullAddress":"77 Canary Wharf Road"}]},
"document":{"number":"CANARYDOC123","type":"PASSPORT","country":"GB"}},"technicalData":{"ip":"198.51.100.77"}}`)
	sumsubBody := []byte(`{"applicantId":"5cb56e8e0a975a35f333cb83","inspectionId":"5cb56e8e0a975a35f333cb84","correlationId":"req-1","externalUserId":"canary-user-1",
"levelName":"basic-kyc-level","type":"applicantReviewed","reviewStatus":"completed","createdAtMs":"2026-11-23 10:05:00.000",
"reviewResult":{"reviewAnswer":"RED","reviewRejectType":"RETRY","rejectLabels":["BAD_SELFIE"],"moderationComment":"Canary moderator comment","clientComment":"CANARYLAST"}}`)

	var bodies bytes.Buffer
	post := func(path string, body []byte, hdr map[string]string) int {
		req, _ := http.NewRequest("POST", base+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		bodies.Write(b)
		return resp.StatusCode
	}
	sig := providers.HexHMAC(providers.SHA256, []byte(veriffSecret), veriffBody)
	if got := post("/v1/webhooks/veriff", veriffBody, map[string]string{"X-HMAC-SIGNATURE": sig}); got != 200 {
		t.Fatalf("valid veriff webhook: %d: %s", got, bodies.String())
	}
	tampered := bytes.Replace(veriffBody, []byte("PASSPORT"), []byte("PASSPORX"), 1)
	if got := post("/v1/webhooks/veriff", tampered, map[string]string{"X-HMAC-SIGNATURE": sig}); got != 401 {
		t.Fatalf("tampered veriff webhook: %d", got)
	}
	if got := post("/v1/webhooks/veriff", []byte(`{"verification":{"person":{"firstName":"CANARYFIRST"}`), map[string]string{"X-HMAC-SIGNATURE": "zz"}); got != 401 {
		t.Fatalf("garbage veriff webhook: %d", got)
	}
	ssig := providers.HexHMAC(providers.SHA256, []byte(sumsubSecret), sumsubBody)
	if got := post("/v1/webhooks/sumsub", sumsubBody, map[string]string{"X-Payload-Digest": ssig, "X-Payload-Digest-Alg": "HMAC_SHA256_HEX"}); got != 200 {
		t.Fatalf("valid sumsub webhook: %d: %s", got, bodies.String())
	}
	if got := post("/v1/webhooks/sumsub", []byte(`{"clientComment":"CANARYLAST"`), map[string]string{"X-Payload-Digest": ssig}); got != 401 {
		t.Fatalf("bad sumsub webhook: %d", got)
	}
	mresp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	if !bytes.Contains(metrics, []byte(`verdict_webhooks_total{provider="veriff",result="applied"} 1`)) ||
		!bytes.Contains(metrics, []byte(`verdict_webhooks_total{provider="veriff",result="bad_signature"} 2`)) {
		t.Errorf("webhook metrics missing:\n%s", grepLines(string(metrics), "verdict_webhooks_total"))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}

	st, err := sqlite.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	evs, err := st.AuditEvents(context.Background(), 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var audit strings.Builder
	for _, ev := range evs {
		audit.WriteString(ev.Type + " " + ev.Actor + " " + ev.SubjectRef + " " + string(ev.Payload) + "\n")
	}
	if !strings.Contains(audit.String(), "webhook.rejected") || !strings.Contains(audit.String(), "verification.status_changed") {
		t.Fatalf("audit lacks the webhook events:\n%s", audit.String())
	}
	vs, err := st.ListVerifications(context.Background(), "canary-user-1", 10)
	if err != nil || len(vs) != 2 {
		t.Fatalf("placeholder sessions: %v %v", vs, err)
	}
	for name, text := range map[string]string{"log": logs.String(), "metrics": string(metrics), "audit": audit.String(), "response bodies": bodies.String()} {
		for _, c := range canaries {
			if name == "response bodies" && c == "canary-user-1" {
				continue // our own user id, echoed to the caller who sent it, is not a leak
			}
			if strings.Contains(text, c) {
				t.Errorf("%s carries %q:\n%s", name, c, grepLines(text, c))
			}
		}
	}
}

func grepLines(text, needle string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, needle) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
