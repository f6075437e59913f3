package http_test

import (
	"strings"
	"testing"
)

// scopeKeys holds one key per scope (and one admin key), so each route can be called by
// every kind of caller.
const scopeKeys = "k-decide:decide-only-secret-0001:decide,k-lists:lists-only-secret-00001:lists," +
	"k-verify:verify-only-secret-0001:verify,k-review:review-only-secret-0001:review," +
	"k-pii:pii-only-secret-000000001:pii,k-label:label-only-secret-000001:label,k-admin:admin-only-secret-000001:admin"

var scopeSecrets = map[string]string{
	"decide": "decide-only-secret-0001", "lists": "lists-only-secret-00001", "verify": "verify-only-secret-0001",
	"review": "review-only-secret-0001", "pii": "pii-only-secret-000000001", "label": "label-only-secret-000001",
	"admin": "admin-only-secret-000001",
}

// TestScopesOnEveryRoute is the access-control table: every API route × every scope →
// allowed (anything but 401/403) or a 403 problem+json; without a key, 401. It also fails
// when a /v1 route is registered without a row here, so a new route cannot ship unguarded.
func TestScopesOnEveryRoute(t *testing.T) {
	e := newEnv(t, options{keys: scopeKeys, verify: true})
	routes := []struct {
		method, path, fiberPath, scope string
	}{
		{"POST", "/v1/decide", "/v1/decide", "decide"},
		{"GET", "/v1/decisions/0192d1b8-0000-7000-8000-000000000000", "/v1/decisions/:id", "decide"},
		{"POST", "/v1/decisions/0192d1b8-0000-7000-8000-000000000000/label", "/v1/decisions/:id/label", "label"},
		{"POST", "/v1/labels", "/v1/labels", "label"},
		{"GET", "/v1/lists/deny_ip", "/v1/lists/:list", "lists"},
		{"PUT", "/v1/lists/deny_ip/entries/192.0.2.1", "/v1/lists/:list/entries/:value", "lists"},
		{"DELETE", "/v1/lists/deny_ip/entries/192.0.2.1", "/v1/lists/:list/entries/:value", "lists"},
		{"DELETE", "/v1/subjects/u1", "/v1/subjects/:id", "admin"},
		{"POST", "/v1/verifications", "/v1/verifications", "verify"},
		{"GET", "/v1/verifications?user_id=u1", "/v1/verifications", "verify"},
		{"GET", "/v1/verifications/ver_x", "/v1/verifications/:id", "verify"},
		{"POST", "/v1/verifications/ver_x/consent", "/v1/verifications/:id/consent", "verify"},
		{"POST", "/v1/verifications/ver_x/evidence", "/v1/verifications/:id/evidence", "verify"},
		{"POST", "/v1/verifications/ver_x/submit", "/v1/verifications/:id/submit", "verify"},
		{"POST", "/v1/verifications/ver_x/cancel", "/v1/verifications/:id/cancel", "verify"},
		{"GET", "/v1/reviews", "/v1/reviews", "review"},
		{"POST", "/v1/reviews/ver_x/claim", "/v1/reviews/:id/claim", "review"},
		{"POST", "/v1/reviews/ver_x/decision", "/v1/reviews/:id/decision", "review"},
		{"POST", "/v1/policies", "/v1/policies", "admin"},
		{"GET", "/v1/policies", "/v1/policies", "admin"},
		{"GET", "/v1/policies/sha256:00", "/v1/policies/:hash", "admin"},
		{"POST", "/v1/policies/activations/x/approve", "/v1/policies/activations/:id/approve", "admin"},
		{"GET", "/v1/policies/payout/activations", "/v1/policies/:action/activations", "admin"},
		{"POST", "/v1/policies/payout/activate", "/v1/policies/:action/activate", "admin"},
		{"POST", "/v1/policies/payout/rollback", "/v1/policies/:action/rollback", "admin"},
		{"PUT", "/v1/policies/payout/shadow", "/v1/policies/:action/shadow", "admin"},
		{"GET", "/v1/policies/payout/shadow", "/v1/policies/:action/shadow", "admin"},
	}
	// Routes that authenticate otherwise: a vendor's signature, a signed upload URL.
	signed := map[string]bool{"POST /v1/webhooks/:provider": true, "PUT /v1/evidence-uploads": true}
	covered := map[string]bool{}
	for _, r := range routes {
		covered[r.method+" "+r.fiberPath] = true
	}
	for _, rt := range e.srv.App().GetRoutes(true) {
		if !strings.HasPrefix(rt.Path, "/v1/") || rt.Method == "HEAD" || signed[rt.Method+" "+rt.Path] {
			continue
		}
		if !covered[rt.Method+" "+rt.Path] {
			t.Errorf("%s %s has no row in the access-control table", rt.Method, rt.Path)
		}
	}
	for _, r := range routes {
		body := "{}"
		if strings.HasSuffix(r.path, "/v1/labels") {
			body = "decision_id,label,tags\n"
		}
		if got := e.do(t, r.method, r.path, body); got.status != 401 {
			t.Errorf("%s %s without a key: %d, want 401", r.method, r.path, got.status)
		}
		for scope, secret := range scopeSecrets {
			hdr := []string{"Authorization", "Bearer " + secret}
			if strings.HasSuffix(r.path, "/v1/labels") {
				hdr = append(hdr, "Content-Type", "text/csv")
			}
			got := e.do(t, r.method, r.path, body, hdr...)
			allowed := scope == r.scope || scope == "admin"
			switch {
			case allowed && (got.status == 401 || got.status == 403):
				t.Errorf("%s %s with scope %s: %d, want it let through: %s", r.method, r.path, scope, got.status, got.body)
			case !allowed && (got.status != 403 || !strings.Contains(got.header.Get("Content-Type"), "problem+json")):
				t.Errorf("%s %s with scope %s: %d %s, want a 403 problem", r.method, r.path, scope, got.status, got.header.Get("Content-Type"))
			}
		}
	}
}
