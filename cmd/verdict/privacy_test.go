package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

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

// TestCanaryPIIStaysOut seeds canary values (names, document numbers, emails, phone
// numbers, an IP, evidence bytes, a review note, API keys, webhook secrets, the payload
// master key) through every input path: /v1/decide (valid and malformed), the webhooks of
// each vendor (valid and tampered), an evidence upload, and a review decision with a note,
// on a real server logging at debug level; then scans every log line, the metrics, every
// audit event and every response body for them, and every byte the server left at rest
// (database files, evidence objects): personal data is stored only sealed.
func TestCanaryPIIStaysOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	const veriffSecret, sumsubSecret = "veriff-webhook-secret-0123", "sumsub-webhook-secret-0123"
	const onfidoSecret, personaSecret = "onfido-webhook-token-0123", "persona-webhook-secret-0123"
	const apiSecret, reviewSecret = "canary-api-key-secret-0123", "canary-review-secret-0123"
	payloadKey := "Y2FuYXJ5LXBheWxvYWQta2V5LTAxMjM0NTY3ODlhYmM="
	env := map[string]string{
		"VERDICT_VERIFF_WEBHOOK_SECRET": veriffSecret, "VERDICT_SUMSUB_WEBHOOK_SECRET": sumsubSecret,
		"VERDICT_ONFIDO_WEBHOOK_SECRET": onfidoSecret, "VERDICT_PERSONA_WEBHOOK_SECRET": personaSecret,
		"VERDICT_MASTER_KEY": payloadKey, "VERDICT_SANDBOX": "1", "VERDICT_SANDBOX_DELAY": "50ms",
		"VERDICT_API_KEYS": "app:" + apiSecret + ":decide+verify+review+label",
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logs := &syncBuffer{}
	go func() {
		done <- run(ctx, []string{"serve", "--addr", addr, "--data-dir", dir, "--log-level", "debug"},
			func(k string) string { return env[k] }, io.Discard, logs)
	}()
	base := "http://" + addr
	waitReady(t, base)

	canaries := []string{"CANARYFIRST", "CANARYLAST", "98765432100", "CANARYDOC123", "77 Canary Wharf Road", "canary-user-1", "Canary moderator comment",
		"canary.person@example.com", "+447700900123", "198.51.100.77", "Canary Person", "CANARYEVIDENCEBYTES", "canary note about the passport",
		"Canaryfirstname", "canary-onfido@example.com", "CANARY-P-778899",
		veriffSecret, sumsubSecret, onfidoSecret, personaSecret, apiSecret, reviewSecret, payloadKey}
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
		req.Header.Set("Authorization", "Bearer "+apiSecret)
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
	// Onfido: a signed workflow_run.completed naming our user, with personal data in the
	// run's input and output.
	onfidoBody := []byte(`{"payload":{"resource_type":"workflow_run","action":"workflow_run.completed",` +
		`"object":{"id":"7c4a1f5e-3b7d-4a8e-9d2f-1e6b5c8a9d01","status":"approved","completed_at_iso8601":"2026-11-23T10:10:00Z"},` +
		`"resource":{"id":"7c4a1f5e-3b7d-4a8e-9d2f-1e6b5c8a9d01","status":"approved","customer_user_id":"canary-user-1","reasons":[],` +
		`"input":{"first_name":"Canaryfirstname","email":"canary-onfido@example.com"},"output":{"document_number":"CANARY-P-778899"}}}}`)
	if got := post("/v1/webhooks/onfido", onfidoBody, map[string]string{"X-SHA2-Signature": providers.HexHMAC(providers.SHA256, []byte(onfidoSecret), onfidoBody)}); got != 200 {
		t.Fatalf("valid onfido webhook: %d: %s", got, bodies.String())
	}
	if got := post("/v1/webhooks/onfido", append([]byte(" "), onfidoBody...), map[string]string{"X-SHA2-Signature": providers.HexHMAC(providers.SHA256, []byte(onfidoSecret), onfidoBody)}); got != 401 {
		t.Fatalf("tampered onfido webhook: %d", got)
	}
	// Persona: a signed inquiry.approved with the inquiry's personal data.
	personaBody := []byte(`{"data":{"type":"event","id":"evt_CanaryEvent01","attributes":{"name":"inquiry.approved","created-at":"` +
		time.Now().UTC().Format(time.RFC3339) + `","payload":{"data":{"type":"inquiry","id":"inq_CanaryInquiry01","attributes":{"status":"approved",` +
		`"reference-id":"canary-user-1","name-first":"CANARYFIRST","name-last":"CANARYLAST","email-address":"canary.person@example.com",` +
		`"phone-number":"+447700900123","identification-number":"CANARYDOC123"}},"included":[]}}}}`)
	ts := fmt.Sprint(time.Now().Unix())
	personaSig := "t=" + ts + ",v1=" + providers.HexHMAC(providers.SHA256, []byte(personaSecret), []byte(ts+"."+string(personaBody)))
	if got := post("/v1/webhooks/persona", personaBody, map[string]string{"Persona-Signature": personaSig}); got != 200 {
		t.Fatalf("valid persona webhook: %d: %s", got, bodies.String())
	}
	if got := post("/v1/webhooks/persona", personaBody, map[string]string{"Persona-Signature": "t=" + ts + ",v1=00"}); got != 401 {
		t.Fatalf("bad persona webhook: %d", got)
	}

	// Decide, with personal data in the request, and a malformed one quoting it.
	decide := []byte(`{"action":"onboarding","subject":{"id":"canary-user-2","email":"canary.person@example.com","name":"Canary Person","phone":"+447700900123","email_verified":true},` +
		`"device":{"id":"dev-canary"},"context":{"ip":"198.51.100.77","country":"DE"}}`)
	if got := post("/v1/decide", decide, nil); got != 200 {
		t.Fatalf("decide: %d", got)
	}
	if got := post("/v1/decide", []byte(`{"action":"onboarding","subject":{"email":["canary.person@example.com"]},"context":{"ip":"198.51.100.77x"}}`), nil); got != 400 {
		t.Fatalf("bad decide: %d", got)
	}
	if got := post("/v1/decide", []byte(`{"action":"canary.person@example.com"}`), nil); got < 400 || got >= 500 {
		t.Fatalf("decide with PII as action: %d", got)
	}

	// Evidence through the sandbox, with the file's bytes as a canary; then a review note.
	var created struct {
		ID string `json:"verification_id"`
	}
	func() {
		req, _ := http.NewRequest("POST", base+"/v1/verifications", strings.NewReader(`{"user_id":"canary-user-review","provider":"sandbox","consent":{"policy_hash":"sha256:canary01","locale":"en-GB","scope":["identity_verification"]}}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+apiSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&created); err != nil || resp.StatusCode != 201 {
			t.Fatalf("create session: %d %v", resp.StatusCode, err)
		}
	}()
	file := []byte("CANARYEVIDENCEBYTES of a passport scan")
	sum := sha256.Sum256(file)
	var ev struct {
		Uploads []struct{ URL string } `json:"uploads"`
	}
	func() {
		req, _ := http.NewRequest("POST", base+"/v1/verifications/"+created.ID+"/evidence", strings.NewReader(
			`{"items":[{"kind":"passport","content_type":"image/jpeg","sha256":"`+hex.EncodeToString(sum[:])+`","size":`+fmt.Sprint(len(file))+`}]}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+apiSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&ev); err != nil || len(ev.Uploads) != 1 {
			t.Fatalf("evidence: %d %v", resp.StatusCode, err)
		}
	}()
	up, _ := http.NewRequest("PUT", ev.Uploads[0].URL, bytes.NewReader(file))
	up.Header.Set("Content-Type", "image/jpeg")
	if resp, err := http.DefaultClient.Do(up); err != nil || resp.StatusCode != 204 {
		t.Fatalf("upload: %v %v", resp, err)
	}
	if got := post("/v1/verifications/"+created.ID+"/submit", nil, nil); got != 200 {
		t.Fatalf("submit: %d", got)
	}
	// The sandbox puts "review" users in pending_review; claim and decide with a note.
	deadline := time.Now().Add(10 * time.Second)
	for post("/v1/reviews/"+created.ID+"/claim", nil, nil) != 200 {
		if time.Now().After(deadline) {
			t.Fatal("the sandbox session never reached the review queue")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := post("/v1/reviews/"+created.ID+"/decision", []byte(`{"outcome":"approved","reason":"DOCUMENT_VERIFIED_MANUALLY","note":"canary note about the passport"}`), nil); got != 200 {
		t.Fatalf("review decision: %d", got)
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
	// The decision above went through the group commit, which reports its batches.
	if !regexp.MustCompile(`(?m)^verdict_commit_batch_records_count [1-9]`).Match(metrics) ||
		!regexp.MustCompile(`(?m)^verdict_commit_duration_seconds_count\{result="ok"\} [1-9]`).Match(metrics) {
		t.Errorf("group commit metrics missing:\n%s", grepLines(string(metrics), "verdict_commit"))
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
	if err != nil || len(vs) != 4 {
		t.Fatalf("placeholder sessions (veriff, sumsub, onfido, persona): %d %v", len(vs), err)
	}
	var atRest strings.Builder
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".key") {
			return err // key files hold keys, not data
		}
		b, err := os.ReadFile(p)
		atRest.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"log": logs.String(), "metrics": string(metrics), "audit": audit.String(), "response bodies": bodies.String(), "data at rest": atRest.String()} {
		for _, c := range canaries {
			if name == "response bodies" && (c == "canary-user-1" || c == apiSecret) {
				continue // our own user id, echoed to the caller who sent it, is not a leak
			}
			if name == "data at rest" && c == "canary-user-1" {
				continue // ids are kept (erasure keeps ids and hashes)
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
