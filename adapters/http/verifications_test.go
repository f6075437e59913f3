package http_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/verdict-engine/verdict/adapters/evidence"
	httpapi "github.com/verdict-engine/verdict/adapters/http"
	"github.com/verdict-engine/verdict/adapters/providers"
	"github.com/verdict-engine/verdict/adapters/providers/sandbox"
	"github.com/verdict-engine/verdict/adapters/vault"
	"github.com/verdict-engine/verdict/adapters/verification"
	"github.com/verdict-engine/verdict/store"
	"github.com/verdict-engine/verdict/store/sqlite"
)

func newVerificationService(t *testing.T, st *sqlite.Store, dir string, vlt *vault.Vault, sbxConfig sandbox.Config) *verification.Service {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	u, _ := url.Parse("http://verdict.test" + httpapi.EvidenceUploadPath)
	ev, err := evidence.OpenLocal(filepath.Join(dir, "evidence"), u, key, 0)
	if err != nil {
		t.Fatal(err)
	}
	sbx := sandbox.New(sbxConfig)
	t.Cleanup(func() { sbx.Close(); ev.Close() })
	return verification.New(verification.Config{CallbackBase: "http://verdict.test"}, st, []providers.Provider{sbx}, ev, vlt)
}

const reviewKeys = "app:app-secret-0123456789:decide+verify,rev:rev-secret-0123456789:review,revpii:revpii-secret-0123456789:review+pii"

func TestReviewQueue(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, options{keys: reviewKeys, verify: true})
	app := []string{"Authorization", "Bearer app-secret-0123456789"}
	rev := []string{"Authorization", "Bearer rev-secret-0123456789"}
	pii := []string{"Authorization", "Bearer revpii-secret-0123456789"}

	// A session waiting for review, and a decision that went to review because of it.
	const user = "jane.doe@example.com"
	v, _, err := e.store.CreateVerification(ctx, store.NewVerification{Verification: store.Verification{
		ID: "ver_00000000000000000000000000000001", UserID: user, Provider: "sandbox", ProviderRef: "sbx_r1",
		Status: store.StatusPendingReview, Score: 55, ReasonCodes: []string{"DOCUMENT_QUALITY_LOW"},
	}, Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	d := e.do(t, "POST", "/v1/decide", `{"action":"onboarding","subject":{"id":"`+user+`","email":"`+user+`","email_verified":true},"context":{"ip":"203.0.113.50","country":"DE"}}`, app...).json(t)
	if d["outcome"] != "review" {
		t.Fatalf("decision: %v", d)
	}
	decisionID := d["decision_id"].(string)

	if r := e.do(t, "GET", "/v1/reviews", "", app...); r.status != 403 {
		t.Fatalf("reviews without the review scope: %d", r.status)
	}
	masked := e.do(t, "GET", "/v1/reviews", "", rev...)
	if masked.status != 200 || bytes.Contains(masked.body, []byte(user)) || bytes.Contains(masked.body, []byte("203.0.113.50")) {
		t.Fatalf("masked list: %d %s", masked.status, masked.body)
	}
	items := masked.json(t)["reviews"].([]any)
	if len(items) != 2 {
		t.Fatalf("want 2 open items, got %s", masked.body)
	}
	if first := items[0].(map[string]any); first["id"] != v.ID || first["pii_masked"] != true {
		t.Fatalf("oldest first: %v", first)
	}
	if r := e.do(t, "GET", "/v1/reviews", "", pii...); bytes.Contains(r.body, []byte(user)) {
		t.Fatalf("pii scope sees unmasked data without asking: %s", r.body)
	}
	if r := e.do(t, "GET", "/v1/reviews?unmask=true", "", rev...); r.status != 403 {
		t.Fatalf("unmask without the pii scope: %d", r.status)
	}
	// Unmasked, the decision's personal data comes back from its sealed copy: the stored
	// snapshot holds only a pseudonym of the IP address.
	if full := e.do(t, "GET", "/v1/reviews?unmask=true", "", pii...); !bytes.Contains(full.body, []byte(user)) ||
		!bytes.Contains(full.body, []byte(`"ip":"203.0.113.50"`)) || bytes.Contains(full.body, []byte("pii_unavailable")) {
		t.Fatalf("pii scope with unmask=true sees masked data: %s", full.body)
	}
	if rec, err := e.store.GetDecision(ctx, decisionID); err != nil || bytes.Contains(rec.Input, []byte("203.0.113.50")) ||
		bytes.Contains(rec.Input, []byte(`"email"`)) || rec.PII == nil {
		t.Fatalf("stored decision: %s (sealed personal data: %d bytes), %v", rec.Input, len(rec.PII), err)
	}

	// Claims: one reviewer at a time; deciding needs the claim.
	if r := e.do(t, "POST", "/v1/reviews/"+v.ID+"/decision", `{"outcome":"approved","reason":"DOCUMENT_VERIFIED_MANUALLY"}`, rev...); r.status != 409 {
		t.Fatalf("decide without claim: %d %s", r.status, r.body)
	}
	if r := e.do(t, "POST", "/v1/reviews/"+v.ID+"/claim", "", rev...); r.status != 200 {
		t.Fatalf("claim: %d %s", r.status, r.body)
	}
	if r := e.do(t, "POST", "/v1/reviews/"+v.ID+"/claim", "", pii...); r.status != 409 || r.json(t)["code"] != "review_claimed" {
		t.Fatalf("second claim: %d %s", r.status, r.body)
	}
	// The note's limit is 2000 characters, as the page's maxlength and the OpenAPI maxLength
	// say, not 2000 bytes: a reviewer writing Cyrillic or Greek is not cut at half of it.
	longNote := `{"outcome":"approved","reason":"OK","note":"` + strings.Repeat("ж", 2001) + `"}`
	for _, bad := range []string{`{"outcome":"approve","reason":"OK"}`, `{"outcome":"approved","reason":"free text"}`, `{"outcome":"approved"}`, `{`, `{"outcome":"approved","reason":"OK","x":1}`, longNote} {
		if r := e.do(t, "POST", "/v1/reviews/"+v.ID+"/decision", bad, rev...); r.status != 400 || !strings.Contains(r.header.Get("Content-Type"), "problem+json") {
			t.Errorf("%s: %d %s", bad, r.status, r.body)
		}
	}
	if r := e.do(t, "POST", "/v1/reviews/"+v.ID+"/decision", `{"outcome":"approved","reason":"DOCUMENT_VERIFIED_MANUALLY","note":"checked the hologram; `+strings.Repeat("голограмма на месте. ", 90)+`"}`, rev...); r.status != 200 {
		t.Fatalf("decide: %d %s", r.status, r.body)
	}
	got, _ := e.store.GetVerification(ctx, v.ID)
	if got.Status != store.StatusApproved {
		t.Fatalf("session after review: %s", got.Status)
	}
	// The decision item: claim and block. The caller that got "review" reads the
	// reviewer's resolution with the decision once there is one.
	if dec := e.do(t, "GET", "/v1/decisions/"+decisionID, "", app...).json(t); dec["review"] != nil || dec["outcome"] != "review" {
		t.Fatalf("decision waiting for review: %v", dec)
	}
	if r := e.do(t, "POST", "/v1/reviews/"+decisionID+"/claim", "", pii...); r.status != 200 {
		t.Fatalf("claim decision: %d %s", r.status, r.body)
	}
	if r := e.do(t, "POST", "/v1/reviews/"+decisionID+"/decision", `{"outcome":"block","reason":"SYNTHETIC_IDENTITY"}`, pii...); r.status != 200 {
		t.Fatalf("decide decision: %d %s", r.status, r.body)
	}
	dec := e.do(t, "GET", "/v1/decisions/"+decisionID, "", app...).json(t)
	if rv, _ := dec["review"].(map[string]any); dec["outcome"] != "review" || rv["outcome"] != "block" || rv["reason"] != "SYNTHETIC_IDENTITY" ||
		rv["reviewer"] != "revpii" || rv["decided_at"] == nil || len(rv) != 4 {
		t.Fatalf("decision after review: %v", dec)
	}
	if left := e.do(t, "GET", "/v1/reviews", "", rev...).json(t)["reviews"].([]any); len(left) != 0 {
		t.Fatalf("queue not empty: %v", left)
	}
	if r := e.do(t, "POST", "/v1/reviews/"+v.ID+"/claim", "", rev...); r.status != 404 {
		t.Fatalf("claim a closed item: %d", r.status)
	}
	// The audit log names reviewers and reasons, never the user id or the note.
	evs, err := e.store.AuditEvents(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]int{}
	for _, ev := range evs {
		types[ev.Type]++
		raw := string(ev.Payload) + ev.SubjectRef + ev.Actor
		if strings.Contains(raw, user) || strings.Contains(raw, "hologram") {
			t.Errorf("audit event %s carries PII: %s", ev.Type, raw)
		}
		// The note is kept as a keyed digest only: a plain SHA-256 of a short note is
		// found by guessing it.
		var rd struct {
			Note string `json:"note_sha256"`
		}
		if ev.Type == store.EventReviewDecided && json.Unmarshal(ev.Payload, &rd) == nil && rd.Note != "" &&
			!regexp.MustCompile(`^hmac-sha256:[0-9a-f]{64}$`).MatchString(rd.Note) {
			t.Errorf("review note digest %q, want hmac-sha256:<hex>", rd.Note)
		}
	}
	if types[store.EventReviewClaimed] != 2 || types[store.EventReviewDecided] != 2 || types[store.EventPIIUnmasked] != 1 {
		t.Fatalf("audit events: %v", types)
	}
}

func TestVerificationBadInput(t *testing.T) {
	e := newEnv(t, options{verify: true})
	for _, tc := range []struct{ method, path, body, code string }{
		{"POST", "/v1/verifications", `{`, "malformed_json"},
		{"POST", "/v1/verifications", `{"user_id":"u"}`, "invalid_request"},
		{"POST", "/v1/verifications", `{"user_id":"u","provider":"acme"}`, "unknown_provider"},
		{"POST", "/v1/verifications", `{"user_id":"u","provider":"sandbox","extra":1}`, "malformed_json"},
		{"POST", "/v1/verifications", `{"user_id":"u","provider":"sandbox","consent":{"policy_hash":"x","locale":"en","scope":[]}}`, "invalid_request"},
		{"GET", "/v1/verifications/nope", ``, "not_found"},
		{"GET", "/v1/verifications/ver_0123", ``, "not_found"},
		{"GET", "/v1/verifications", ``, "invalid_request"},
		{"POST", "/v1/webhooks/acme", `{}`, "unknown_provider"},
		{"POST", "/v1/webhooks/sandbox", `{}`, "webhook_rejected"},
		{"PUT", "/v1/evidence-uploads?obj=evidence/x&expiry=9999999999&method=PUT&signature=forged", `data`, "upload_url_invalid"},
	} {
		r := e.do(t, tc.method, tc.path, tc.body)
		if r.status < 400 || r.status >= 500 || !strings.Contains(r.header.Get("Content-Type"), "problem+json") {
			t.Errorf("%s %s %s: %d %s", tc.method, tc.path, tc.body, r.status, r.body)
			continue
		}
		if got := r.json(t)["code"]; got != tc.code {
			t.Errorf("%s %s %s: code %v, want %s", tc.method, tc.path, tc.body, got, tc.code)
		}
	}
}

// TestUploadURLClosesAtSubmission: an upload URL stays authentic until it expires, but once
// submission has checked and sealed its file the URL is refused, so neither plaintext nor
// other bytes can replace the sealed evidence.
func TestUploadURLClosesAtSubmission(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, options{verify: true, dir: dir})
	created := e.do(t, "POST", "/v1/verifications", `{"user_id":"user-up","provider":"sandbox",
		"consent":{"policy_hash":"sha256:4f2a9c01","locale":"en-GB","scope":["identity_verification"]}}`)
	if created.status != 201 {
		t.Fatalf("create: %d %s", created.status, created.body)
	}
	id := created.json(t)["verification_id"].(string)
	const file = "abc"
	sum := sha256.Sum256([]byte(file))
	added := e.do(t, "POST", "/v1/verifications/"+id+"/evidence", `{"items":[{"kind":"selfie","content_type":"image/png","sha256":"`+
		hex.EncodeToString(sum[:])+`","size":3}]}`)
	if added.status != 201 && added.status != 200 {
		t.Fatalf("evidence: %d %s", added.status, added.body)
	}
	up := added.json(t)["uploads"].([]any)[0].(map[string]any)
	u, err := url.Parse(up["url"].(string))
	if err != nil {
		t.Fatal(err)
	}
	put := func(body string) resp {
		return e.do(t, "PUT", u.RequestURI(), body, "Content-Type", "image/png")
	}
	if r := put(file); r.status != 204 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	if r := put(file); r.status != 204 {
		t.Fatalf("a second upload before submission replaces the first: %d %s", r.status, r.body)
	}
	if r := e.do(t, "POST", "/v1/verifications/"+id+"/submit", ""); r.status != 200 {
		t.Fatalf("submit: %d %s", r.status, r.body)
	}
	object := filepath.Join(dir, "evidence", filepath.FromSlash(u.Query().Get("obj")))
	sealed, err := os.ReadFile(object)
	if err != nil || bytes.Contains(sealed, []byte(file)) {
		t.Fatalf("object after submission: %q, %v", sealed, err)
	}
	for _, body := range []string{file, "xyz"} {
		r := put(body)
		if r.status != 409 || r.json(t)["code"] != "invalid_state" {
			t.Fatalf("upload of %q after submission: %d %s", body, r.status, r.body)
		}
	}
	if after, err := os.ReadFile(object); err != nil || !bytes.Equal(after, sealed) {
		t.Fatalf("the sealed object changed after refused uploads: %q, %v", after, err)
	}
}

// TestCancelDropsUnsealedUploads: files are sealed at submission; a session cancelled before
// it leaves no plaintext upload in the bucket, and takes no upload after.
func TestCancelDropsUnsealedUploads(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, options{verify: true, dir: dir})
	created := e.do(t, "POST", "/v1/verifications", `{"user_id":"user-cx","provider":"sandbox",
		"consent":{"policy_hash":"sha256:4f2a9c01","locale":"en-GB","scope":["identity_verification"]}}`)
	id := created.json(t)["verification_id"].(string)
	const file = "ZCANARY plaintext"
	sum := sha256.Sum256([]byte(file))
	added := e.do(t, "POST", "/v1/verifications/"+id+"/evidence", `{"items":[{"kind":"selfie","content_type":"image/png","sha256":"`+
		hex.EncodeToString(sum[:])+`","size":17}]}`)
	up := added.json(t)["uploads"].([]any)[0].(map[string]any)
	u, err := url.Parse(up["url"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if r := e.do(t, "PUT", u.RequestURI(), file, "Content-Type", "image/png"); r.status != 204 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	object := filepath.Join(dir, "evidence", filepath.FromSlash(u.Query().Get("obj")))
	if _, err := os.Stat(object); err != nil {
		t.Fatalf("the upload is not in the bucket: %v", err)
	}
	cancelled := e.do(t, "POST", "/v1/verifications/"+id+"/cancel", "")
	if cancelled.status != 200 {
		t.Fatalf("cancel: %d %s", cancelled.status, cancelled.body)
	}
	// The answer says what became of the file, as a GET afterwards does.
	if ev, _ := cancelled.json(t)["evidence"].([]any); len(ev) != 1 || ev[0].(map[string]any)["state"] != "deleted" {
		t.Fatalf("cancel answered evidence %v; want one pointer, deleted", ev)
	}
	if _, err := os.Stat(object); !os.IsNotExist(err) {
		t.Fatalf("the plaintext upload outlived the cancelled session: %v", err)
	}
	if r := e.do(t, "PUT", u.RequestURI(), file, "Content-Type", "image/png"); r.status != 409 {
		t.Fatalf("upload after cancel: %d %s", r.status, r.body)
	}
	// The pointer says its object is gone, so retention and erasure do not count it as held.
	v, err := e.store.GetVerification(t.Context(), id)
	if err != nil || len(v.Evidence) != 1 || v.Evidence[0].State != store.EvidenceDeleted {
		t.Fatalf("evidence after cancel = %+v, %v; want one pointer, deleted", v.Evidence, err)
	}
}

// TestVerificationFieldPointers: a refused field is named where it is in the body sent.
func TestVerificationFieldPointers(t *testing.T) {
	e := newEnv(t, options{verify: true})
	created := e.do(t, "POST", "/v1/verifications", `{"user_id":"user-ptr","provider":"sandbox"}`)
	if created.status != 201 {
		t.Fatalf("create: %d %s", created.status, created.body)
	}
	id := created.json(t)["verification_id"].(string)
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	for _, tc := range []struct{ path, body, pointer string }{
		{"/v1/verifications/" + id + "/consent", `{"policy_hash":"sha256:4f2a9c01","locale":"en-GB","scope":[]}`, "/scope"},
		{"/v1/verifications/" + id + "/consent", `{"policy_hash":"x","locale":"en-GB","scope":["identity_verification"]}`, "/policy_hash"},
		{"/v1/verifications/" + id + "/consent", `{"policy_hash":"sha256:4f2a9c01","locale":"en-GB","scope":["identity_verification","Bad"]}`, "/scope/1"},
		{"/v1/verifications/" + id + "/consent", `{"policy_hash":"sha256:4f2a9c01","locale":"en-GB","scope":["identity_verification"],"granted_at":"` + future + `"}`, "/granted_at"},
		{"/v1/verifications/" + id + "/consent", `{"policy_hash":"sha256:4f2a9c01","locale":"en-GB","scope":["identity_verification"],"granted_at":"0001-01-01T00:00:00+05:00"}`, "/granted_at"},
		{"/v1/verifications", `{"user_id":"u","provider":"sandbox","consent":{"policy_hash":"sha256:4f2a9c01","locale":"en-GB","scope":["identity_verification"],"granted_at":"` + future + `"}}`, "/consent/granted_at"},
	} {
		r := e.do(t, "POST", tc.path, tc.body)
		if r.status != 400 {
			t.Errorf("%s %s: %d %s", tc.path, tc.body, r.status, r.body)
			continue
		}
		errs, _ := r.json(t)["errors"].([]any)
		if len(errs) != 1 || errs[0].(map[string]any)["pointer"] != tc.pointer {
			t.Errorf("%s %s: errors %v, want pointer %s", tc.path, tc.body, errs, tc.pointer)
		}
	}
	r := e.do(t, "POST", "/v1/verifications/"+id+"/consent", `{"policy_hash":"sha256:4f2a9c01","locale":"en-GB","scope":["identity_verification"]}`)
	if r.status != 200 {
		t.Fatalf("consent: %d %s", r.status, r.body)
	}
	r = e.do(t, "POST", "/v1/verifications/"+id+"/evidence", `{"items":[{"kind":"selfie","content_type":"image/png","sha256":"`+strings.Repeat("a", 64)+`","size":3.5}]}`)
	if errs, _ := r.json(t)["errors"].([]any); r.status != 400 || len(errs) != 1 || errs[0].(map[string]any)["detail"] != "must be an integer" {
		t.Errorf("fractional size: %d %s", r.status, r.body)
	}
}

// TestErasureClosesEvidence: once an erasure deleted a capturing session's files, their
// pointers say "deleted"; an upload URL still within its lifetime is refused, saying why,
// and a file put into the bucket behind Verdict's back (a bucket that takes uploads
// directly) is not submitted: the pointer stays deleted and no plaintext is kept.
func TestErasureClosesEvidence(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, options{verify: true, dir: dir})
	created := e.do(t, "POST", "/v1/verifications", `{"user_id":"user-erased","provider":"sandbox",
		"consent":{"policy_hash":"sha256:4f2a9c01","locale":"en-GB","scope":["identity_verification"]}}`)
	id := created.json(t)["verification_id"].(string)
	files := []string{"ZCANARY one", "ZCANARY two"}
	var items []string
	for _, f := range files {
		sum := sha256.Sum256([]byte(f))
		items = append(items, `{"kind":"selfie","content_type":"image/png","sha256":"`+hex.EncodeToString(sum[:])+`","size":11}`)
	}
	added := e.do(t, "POST", "/v1/verifications/"+id+"/evidence", `{"items":[`+strings.Join(items, ",")+`]}`)
	var urls []*url.URL
	for _, up := range added.json(t)["uploads"].([]any) {
		u, err := url.Parse(up.(map[string]any)["url"].(string))
		if err != nil {
			t.Fatal(err)
		}
		urls = append(urls, u)
	}
	if r := e.do(t, "PUT", urls[0].RequestURI(), files[0], "Content-Type", "image/png"); r.status != 204 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	if r := e.do(t, "DELETE", "/v1/subjects/user-erased", ""); r.status != 200 || r.json(t)["evidence_deleted"] != 2.0 {
		t.Fatalf("erase: %d %s", r.status, r.body)
	}
	states := func() string {
		var out []string
		for _, ev := range e.do(t, "GET", "/v1/verifications/"+id, "").json(t)["evidence"].([]any) {
			out = append(out, ev.(map[string]any)["state"].(string))
		}
		return strings.Join(out, ",")
	}
	if got := states(); got != "deleted,deleted" {
		t.Fatalf("evidence after erasure: %s", got)
	}
	r := e.do(t, "PUT", urls[1].RequestURI(), files[1], "Content-Type", "image/png")
	if r.status != 409 || !strings.Contains(r.json(t)["detail"].(string), "deleted") {
		t.Fatalf("upload after erasure: %d %s", r.status, r.body)
	}
	// As a bucket taking uploads directly would have it: the file is there again.
	for i, u := range urls {
		object := filepath.Join(dir, "evidence", filepath.FromSlash(u.Query().Get("obj")))
		if err := os.WriteFile(object, []byte(files[i]), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r = e.do(t, "POST", "/v1/verifications/"+id+"/submit", "")
	if r.status != 409 || r.json(t)["code"] != "evidence_missing" || !strings.Contains(r.json(t)["detail"].(string), "deleted") {
		t.Fatalf("submit after erasure: %d %s", r.status, r.body)
	}
	if got := states(); got != "deleted,deleted" {
		t.Fatalf("evidence after a refused submission: %s", got)
	}
}
