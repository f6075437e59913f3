package policytest_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/verdict-engine/verdict/engine/policytest"
)

func TestScrub(t *testing.T) {
	in := `{"action":"payout",
	  "subject":{"id":"user-42","email":"ann@example.com","Phone":"+33612345678","name":"Ann","country":"FR","account_age_days":12,
	             "profile":{"first_name":"Ann","dob":"1990-01-01","addresses":[{"street":"1 rue X","postcode":"75001","city":"Paris"}]}},
	  "device":{"id":"dev-9f3","user_agent":"Mozilla/5.0","platform":"ios"},
	  "context":{"ip":"203.0.113.7","country":"FR","amount":1800.50,"iban":"FR7630006000011234567890189","card_number":"4111111111111111"},
	  "behavior":{"bot_score":0.05,"full_name":"Ann Smith"},
	  "signals":{"lists":{"deny_user":false},"velocity":{"user":{"count_1h":3}},"email":"kept: signals are derived"}}`
	out, err := policytest.Scrub([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"action": "payout",
		"subject": map[string]any{"id": "subject-" + sha12("user-42"), "country": "FR", "account_age_days": 12.0,
			"profile": map[string]any{"addresses": []any{map[string]any{"city": "Paris"}}}},
		"device":   map[string]any{"id": got["device"].(map[string]any)["id"], "platform": "ios"},
		"context":  map[string]any{"ip": got["context"].(map[string]any)["ip"], "country": "FR", "amount": 1800.5},
		"behavior": map[string]any{"bot_score": 0.05},
		"signals":  map[string]any{"lists": map[string]any{"deny_user": false}, "velocity": map[string]any{"user": map[string]any{"count_1h": 3.0}}, "email": "kept: signals are derived"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("scrubbed (-want +got):\n%s", diff)
	}
	if id := got["subject"].(map[string]any)["id"].(string); !strings.HasPrefix(id, "subject-") || len(id) != len("subject-")+12 {
		t.Errorf("subject id %q", id)
	}
	if id := got["device"].(map[string]any)["id"].(string); !strings.HasPrefix(id, "device-") || len(id) != len("device-")+12 {
		t.Errorf("device id %q", id)
	}
	if ip := got["context"].(map[string]any)["ip"].(string); !strings.HasPrefix(ip, "192.0.2.") {
		t.Errorf("ip %q is not in 192.0.2.0/24", ip)
	}
	if !strings.Contains(string(out), `"amount":1800.50`) {
		t.Errorf("numbers are not kept exactly: %s", out)
	}
	again, _ := policytest.Scrub([]byte(in))
	if string(again) != string(out) {
		t.Error("Scrub is not deterministic")
	}
	v6, _ := policytest.Scrub([]byte(`{"context":{"ip":"2a01:e0a::1"}}`))
	if !strings.Contains(string(v6), `"ip":"2001:db8::`) {
		t.Errorf("IPv6 not mapped to 2001:db8::/32: %s", v6)
	}
	for _, bad := range []string{``, `null`, `[]`, `{"a":1} {}`, `{`} {
		if _, err := policytest.Scrub([]byte(bad)); err == nil {
			t.Errorf("Scrub(%q) succeeded", bad)
		}
	}
}

// FuzzScrub: Scrub never panics, and the email and phone it is given never survive,
// wherever they sit in the caller-posted parts of the input.
func FuzzScrub(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "policies", "testdata", "cases", "*.json"))
	for i, file := range files {
		if i >= 5 {
			break
		}
		c, err := policytest.ReadCase(file)
		if err == nil {
			f.Add([]byte(c.Input), "ann@example.com", "+33612345678")
		}
	}
	f.Add([]byte(`{"subject":{"id":1,"EMAIL":"x"},"context":{"ip":["a"]}}`), "a", "b")
	f.Add([]byte(`not json`), "", "")
	f.Fuzz(func(t *testing.T, doc []byte, email, phone string) {
		_, _ = policytest.Scrub(doc) // never panics

		// A template with nothing else that could hold the values, so that finding
		// them in the output means they leaked.
		in := map[string]any{
			"action":   "login",
			"subject":  map[string]any{"id": "u", "email": email, "contact": map[string]any{"Phone": phone}},
			"device":   map[string]any{"id": "d", "list": []any{map[string]any{"phone": phone}}},
			"context":  map[string]any{"ip": "203.0.113.9", "EMAIL": email},
			"behavior": map[string]any{"form": []any{map[string]any{"email": email, "phone": phone}}},
		}
		raw, err := json.Marshal(in)
		if err != nil {
			t.Skip()
		}
		out, err := policytest.Scrub(raw)
		if err != nil {
			t.Fatalf("Scrub of a valid document: %v", err)
		}
		var got any
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("Scrub output is not JSON: %v", err)
		}
		baseline := map[string]bool{}
		collect(got, func(s string) { baseline[s] = true })
		for _, v := range []string{email, phone} {
			if v != "" && baseline[v] && !templateValue(v) {
				t.Fatalf("value %q survived: %s", v, out)
			}
		}
	})
}

// templateValue reports whether s is one of the values the fuzz template itself keeps.
func templateValue(s string) bool {
	switch s {
	case "login", "subject-" + sha12("u"), "device-" + sha12("d"),
		"action", "subject", "id", "contact", "device", "list", "context", "ip", "behavior", "form":
		return true
	}
	return strings.HasPrefix(s, "192.0.2.")
}

func sha12(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:12]
}

func collect(v any, fn func(string)) {
	switch x := v.(type) {
	case string:
		fn(x)
	case map[string]any:
		for k, e := range x {
			fn(k)
			collect(e, fn)
		}
	case []any:
		for _, e := range x {
			collect(e, fn)
		}
	}
}

// TestExportedCasesReplay exports decisions made by the shipped policies, with personal
// data added to their inputs, and replays the export against the same policies: scrubbing
// must not change a single decision.
func TestExportedCasesReplay(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "policies", "testdata", "cases", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	out := t.TempDir()
	for i, file := range files {
		c, err := policytest.ReadCase(file)
		if err != nil {
			t.Fatal(err)
		}
		var in map[string]any
		if err := json.Unmarshal(c.Input, &in); err != nil {
			t.Fatal(err)
		}
		in["subject"].(map[string]any)["email"] = "ann@example.com"
		in["subject"].(map[string]any)["full_name"] = "Ann Smith"
		if ctx, ok := in["context"].(map[string]any); ok {
			ctx["phone"] = "+33612345678"
			ctx["user_agent"] = "Mozilla/5.0"
		}
		raw, _ := json.Marshal(in)
		action := in["action"].(string)
		ec, err := policytest.ExportCase(policytest.StoredDecision{
			ID:     "0190a0b0-0000-7000-8000-" + strings.Repeat("0", 10) + string(rune('a'+i%26)) + string(rune('a'+i/26)),
			Action: action, Input: raw, Outcome: c.Want.Outcome, ReasonCodes: c.Want.ReasonCodes, StepUp: c.Want.StepUp,
			Note: "policy test",
		})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(ec.Name, action+"-") {
			t.Errorf("case name %q", ec.Name)
		}
		if strings.Contains(string(ec.Input), "ann@example.com") || strings.Contains(string(ec.Input), "+33612345678") || strings.Contains(string(ec.Input), "Ann Smith") {
			t.Fatalf("PII left in %s", ec.Input)
		}
		if _, err := policytest.WriteCase(out, ec); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := policytest.Run(context.Background(), filepath.Join("..", "..", "policies", "bundle"), policytest.WithGolden(out),
		policytest.WithFilter(regexpMust(`^(login|onboarding|payout)-0190`)))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Passed() != len(files) || rep.Failed() != 0 {
		for _, r := range rep.Results {
			if r.Status == policytest.Fail {
				t.Errorf("%s %s:\n%s", r.Location(), r.Name, r.Detail)
			}
		}
		t.Fatalf("replay: %d passed, %d failed, want %d passed", rep.Passed(), rep.Failed(), len(files))
	}
	if _, err := policytest.ExportCase(policytest.StoredDecision{ID: "../x", Action: "login", Input: []byte(`{}`)}); err == nil {
		t.Error("an id naming another directory was accepted")
	}
	_ = os.Remove(out)
}
