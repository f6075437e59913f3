package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSandboxVerificationFlow is the README's sandbox walk-through, over real HTTP against
// a real server on the embedded store: create a session, record consent, upload evidence
// through the signed URL, submit, let the sandbox's signed webhook arrive, and see
// /v1/decide for that user change outcome.
func TestSandboxVerificationFlow(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	env := map[string]string{"VERDICT_SANDBOX_DELAY": "100ms"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var stderr bytes.Buffer
	go func() {
		done <- run(ctx, []string{"serve", "--dev", "--addr", addr, "--data-dir", dir, "--log-level", "warn"},
			func(k string) string { return env[k] }, io.Discard, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	base := "http://" + addr
	waitReady(t, base)

	call := func(method, path string, body any, want int) map[string]any {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, base+path, rd)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, raw)
		}
		var out map[string]any
		_ = json.Unmarshal(raw, &out)
		return out
	}
	decide := func(user string) string {
		t.Helper()
		d := call("POST", "/v1/decide", map[string]any{
			"action":  "onboarding",
			"subject": map[string]any{"id": user, "email_verified": true},
			"device":  map[string]any{"id": "dev_" + user},
			"context": map[string]any{"ip": "203.0.113.9", "country": "DE"},
		}, 200)
		return d["outcome"].(string)
	}

	const user = "usr_flow_1"
	if got := decide(user); got != "step_up" {
		t.Fatalf("before verification: outcome %s, want step_up", got)
	}
	v := call("POST", "/v1/verifications", map[string]any{"user_id": user, "provider": "sandbox"}, 201)
	id := v["verification_id"].(string)
	if v["status"] != "capturing" || v["provider_ref"] == "" {
		t.Fatalf("created session: %v", v)
	}
	doc := []byte("\xff\xd8\xff not really a jpeg, but bytes with a hash")
	sum := sha256.Sum256(doc)
	item := map[string]any{"items": []any{map[string]any{"kind": "document_front", "content_type": "image/jpeg", "sha256": hex.EncodeToString(sum[:]), "size": len(doc)}}}
	p := call("POST", "/v1/verifications/"+id+"/evidence", item, 409)
	if p["code"] != "consent_required" {
		t.Fatalf("evidence before consent: %v", p)
	}
	call("POST", "/v1/verifications/"+id+"/consent", map[string]any{"policy_hash": "sha256:0f1e2d3c", "locale": "en-GB", "scope": []string{"identity_verification"}}, 200)
	ev := call("POST", "/v1/verifications/"+id+"/evidence", item, 201)
	up := ev["uploads"].([]any)[0].(map[string]any)

	// Submitting before the upload is refused; a wrong file is refused at submit.
	if p := call("POST", "/v1/verifications/"+id+"/submit", nil, 409); p["code"] != "evidence_missing" {
		t.Fatalf("submit before upload: %v", p)
	}
	put := func(body []byte, contentType string) int {
		req, _ := http.NewRequest("PUT", up["url"].(string), bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := put(doc, "image/png"); got != 403 {
		t.Fatalf("upload with another content type: %d, want 403", got)
	}
	if got := put([]byte("other bytes"), "image/jpeg"); got != 204 {
		t.Fatalf("upload: %d", got)
	}
	if p := call("POST", "/v1/verifications/"+id+"/submit", nil, 422); p["code"] != "evidence_mismatch" {
		t.Fatalf("submit with a mismatching file: %v", p)
	}
	if got := put(doc, "image/jpeg"); got != 204 {
		t.Fatalf("upload: %d", got)
	}
	if s := call("POST", "/v1/verifications/"+id+"/submit", nil, 200); s["status"] != "submitted" {
		t.Fatalf("submit: %v", s)
	}

	deadline := time.Now().Add(10 * time.Second)
	for {
		g := call("GET", "/v1/verifications/"+id, nil, 200)
		if g["status"] == "approved" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("session not approved by the sandbox webhook: %v\nserver log:\n%s", g, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := decide(user); got != "approve" {
		t.Fatalf("after approval: outcome %s, want approve", got)
	}
	list := call("GET", "/v1/verifications?user_id="+user, nil, 200)
	if n := len(list["verifications"].([]any)); n != 1 {
		t.Fatalf("list: %d sessions", n)
	}

	// A forged webhook is refused and changes nothing.
	req, _ := http.NewRequest("POST", base+"/v1/webhooks/sandbox", strings.NewReader(`{"type":"verification.decided"}`))
	req.Header.Set("webhook-id", "msg_x")
	req.Header.Set("webhook-timestamp", fmt.Sprint(time.Now().Unix()))
	req.Header.Set("webhook-signature", "v1,AAAA")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("forged webhook: %d, want 401", resp.StatusCode)
	}

	// The audit chain holds every step and verifies.
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	done <- nil
	var out bytes.Buffer
	if err := run(context.Background(), []string{"audit", "verify", "--data-dir", dir}, func(string) string { return "" }, &out, io.Discard); err != nil {
		t.Fatalf("audit verify: %v\n%s", err, out.String())
	}
}

func waitReady(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("server did not become ready")
}
