package http_test

import (
	"bytes"
	"strings"
	"testing"
)

func TestEraseSubjectHTTP(t *testing.T) {
	e := newEnv(t, options{keys: "adm:adm-secret-0123456789:admin+pii"})
	adm := []string{"Authorization", "Bearer adm-secret-0123456789"}
	body := `{"action":"onboarding","subject":{"id":"user/7","email":"seven@example.com","name":"Seven Person"},"context":{"ip":"203.0.113.77","country":"DE"}}`
	d := e.do(t, "POST", "/v1/decide", body, adm...).json(t)
	id, _ := d["decision_id"].(string)
	if id == "" {
		t.Fatalf("decide: %v", d)
	}

	for _, bad := range []string{"/v1/subjects/" + strings.Repeat("x", 257), "/v1/subjects/a%00b"} {
		r := e.do(t, "DELETE", bad, "", adm...)
		if r.status != 400 || !strings.Contains(r.header.Get("Content-Type"), "problem+json") {
			t.Errorf("DELETE %s: %d %s", bad[:min(len(bad), 40)], r.status, r.body)
		}
	}
	r := e.do(t, "DELETE", "/v1/subjects/user%2F7", "", adm...)
	if r.status != 200 {
		t.Fatalf("erase: %d %s", r.status, r.body)
	}
	got := r.json(t)
	if got["user_id"] != "user/7" || got["key_destroyed"] != true || got["decisions"] != 1.0 {
		t.Fatalf("erase: %s", r.body)
	}
	// The decision stays, without personal data; the review view has nothing to unmask.
	g := e.do(t, "GET", "/v1/decisions/"+id, "", adm...)
	if g.status != 200 || bytes.Contains(g.body, []byte("seven@example.com")) || bytes.Contains(g.body, []byte("203.0.113.77")) ||
		!bytes.Contains(g.body, []byte(`"outcome"`)) {
		t.Fatalf("decision after erasure: %d %s", g.status, g.body)
	}
	if u := e.do(t, "GET", "/v1/reviews?unmask=true", "", adm...); bytes.Contains(u.body, []byte("seven@example.com")) {
		t.Fatalf("unmasked review after erasure: %s", u.body)
	}
	// Again: nothing left, still answered and audited.
	if r := e.do(t, "DELETE", "/v1/subjects/user%2F7", "", adm...); r.status != 200 || r.json(t)["key_destroyed"] != false {
		t.Fatalf("second erase: %d %s", r.status, r.body)
	}
}
