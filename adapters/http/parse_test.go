package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/store"
)

func known(a string) (*engine.Policy, bool) {
	return &engine.Policy{Action: a}, a == "login" || a == "payout"
}
func actions() []string       { return []string{"login", "payout"} }
func parse(body string) error { _, err := parseDecideRequest([]byte(body), known, actions); return err }

func TestParseDecideRequest(t *testing.T) {
	tests := []struct {
		name, body, code, pointer string
		status                    int
	}{
		{"ok", `{"action":"login","subject":{"id":"u1"},"context":{"ip":"10.0.0.1","country":"de","amount":5}}`, "", "", 0},
		{"malformed", `{"action":`, CodeMalformedJSON, "", 400},
		{"not json", `hello`, CodeMalformedJSON, "", 400},
		{"empty", ``, CodeMalformedJSON, "", 400},
		{"array", `[]`, CodeMalformedJSON, "", 400},
		{"trailing data", `{"action":"login","subject":{"id":"u"}} {}`, CodeMalformedJSON, "", 400},
		{"missing action", `{"subject":{"id":"u1"}}`, CodeInvalidRequest, "/action", 400},
		{"bad action", `{"action":"Log In","subject":{"id":"u1"}}`, CodeInvalidRequest, "/action", 400},
		{"action wrong type", `{"action":5,"subject":{"id":"u1"}}`, CodeInvalidRequest, "/action", 400},
		{"missing subject", `{"action":"login"}`, CodeInvalidRequest, "/subject", 400},
		{"subject wrong type", `{"action":"login","subject":"u1"}`, CodeInvalidRequest, "/subject", 400},
		{"missing subject id", `{"action":"login","subject":{}}`, CodeInvalidRequest, "/subject/id", 400},
		{"subject id wrong type", `{"action":"login","subject":{"id":7}}`, CodeInvalidRequest, "/subject/id", 400},
		{"subject id too long", `{"action":"login","subject":{"id":"` + string(make([]byte, 0)) + repeat("x", 300) + `"}}`, CodeInvalidRequest, "/subject/id", 400},
		{"device id wrong type", `{"action":"login","subject":{"id":"u"},"device":{"id":true}}`, CodeInvalidRequest, "/device/id", 400},
		{"bad ip", `{"action":"login","subject":{"id":"u"},"context":{"ip":"999.1.1.1"}}`, CodeInvalidRequest, "/context/ip", 400},
		{"bad country", `{"action":"login","subject":{"id":"u"},"context":{"country":"Germany"}}`, CodeInvalidRequest, "/context/country", 400},
		{"negative amount", `{"action":"payout","subject":{"id":"u"},"context":{"amount":-1}}`, CodeInvalidRequest, "/context/amount", 400},
		{"amount as string", `{"action":"payout","subject":{"id":"u"},"context":{"amount":"100"}}`, CodeInvalidRequest, "/context/amount", 400},
		{"amount out of range", `{"action":"payout","subject":{"id":"u"},"context":{"ip":"10.0.0.1","amount":1e309}}`, CodeInvalidRequest, "/context/amount", 400},
		{"nested number out of range", `{"action":"login","subject":{"id":"u"},"behavior":{"x":[1,{"a/b~":[2,-1e400]}]}}`, CodeInvalidRequest, "/behavior/x/1/a~1b~0/1", 400},
		{"bot score as string", `{"action":"login","subject":{"id":"u"},"behavior":{"bot_score":"0.95"}}`, CodeInvalidRequest, "/behavior/bot_score", 400},
		{"bot score null", `{"action":"login","subject":{"id":"u"},"behavior":{"bot_score":null}}`, CodeInvalidRequest, "/behavior/bot_score", 400},
		{"emulator as string", `{"action":"login","subject":{"id":"u"},"device":{"emulator":"true"}}`, CodeInvalidRequest, "/device/emulator", 400},
		{"account age as string", `{"action":"payout","subject":{"id":"u","account_age_days":"400"}}`, CodeInvalidRequest, "/subject/account_age_days", 400},
		{"failed attempts fractional", `{"action":"login","subject":{"id":"u"},"context":{"failed_attempts":2.5}}`, CodeInvalidRequest, "/context/failed_attempts", 400},
		{"new beneficiary as number", `{"action":"payout","subject":{"id":"u"},"context":{"new_beneficiary":1}}`, CodeInvalidRequest, "/context/new_beneficiary", 400},
		{"payout method as object", `{"action":"payout","subject":{"id":"u"},"context":{"payout_method":{"kind":"crypto"}}}`, CodeInvalidRequest, "/context/payout_method", 400},
		{"unknown field", `{"action":"login","subject":{"id":"u"},"subjet":{}}`, CodeInvalidRequest, "/subjet", 400},
		{"unknown action", `{"action":"transfer","subject":{"id":"u"}}`, CodeUnknownAction, "", 422},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := parse(tc.body)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			var ae *apiError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v, want *apiError", err)
			}
			if ae.code != tc.code || ae.status != tc.status {
				t.Fatalf("got %d %s (%s), want %d %s", ae.status, ae.code, ae.detail, tc.status, tc.code)
			}
			if tc.pointer != "" && (len(ae.fields) == 0 || ae.fields[0].Pointer != tc.pointer) {
				t.Fatalf("fields = %+v, want pointer %s", ae.fields, tc.pointer)
			}
		})
	}
}

// TestParseDecideRequestTypedFields: every documented field of the input document with
// a JSON type is refused with another type, pointed at, and accepted with its own; one
// body with every field wrong gets every pointer. A wrong type made the rule reading the
// field skip silently ("bot_score": "0.95" switched off BOT_SCORE_HIGH).
func TestParseDecideRequestTypedFields(t *testing.T) {
	sections := map[int]string{sectionSubject: "subject", sectionDevice: "device", sectionContext: "context", sectionBehavior: "behavior"}
	good := map[fieldKind]string{kindString: `"x"`, kindNumber: `0.5`, kindInteger: `3`, kindBool: `false`}
	wrong := map[fieldKind]string{kindString: `7`, kindNumber: `"0.5"`, kindInteger: `"3"`, kindBool: `"false"`}
	all := map[string][]string{}
	for _, f := range typedFields {
		sec := sections[f.section]
		if want := "/" + sec + "/" + f.key; f.pointer != want {
			t.Errorf("pointer %s, want %s", f.pointer, want)
		}
		extra := func(v string) string {
			if sec == "subject" {
				return `{"action":"login","subject":{"id":"u","` + f.key + `":` + v + `}}`
			}
			return `{"action":"login","subject":{"id":"u"},"` + sec + `":{"` + f.key + `":` + v + `}}`
		}
		if err := parse(extra(good[f.kind])); err != nil {
			t.Errorf("%s = %s: %v", f.pointer, good[f.kind], err)
		}
		var ae *apiError
		if err := parse(extra(wrong[f.kind])); !errors.As(err, &ae) || ae.code != CodeInvalidRequest || len(ae.fields) != 1 || ae.fields[0].Pointer != f.pointer {
			t.Errorf("%s = %s: %v", f.pointer, wrong[f.kind], err)
		} else if want := "must be " + f.kind.String(); ae.fields[0].Detail != want {
			t.Errorf("%s: detail %q, want %q", f.pointer, ae.fields[0].Detail, want)
		}
		all[sec] = append(all[sec], `"`+f.key+`":`+wrong[f.kind])
	}
	body := `{"action":"login","subject":{"id":"u",` + strings.Join(all["subject"], ",") + `}`
	for _, sec := range []string{"device", "context", "behavior"} {
		body += `,"` + sec + `":{` + strings.Join(all[sec], ",") + `}`
	}
	var ae *apiError
	if err := parse(body + `}`); !errors.As(err, &ae) || len(ae.fields) != len(typedFields) {
		t.Fatalf("every field wrong: %v, want %d field errors", err, len(typedFields))
	}
}

func repeat(s string, n int) string {
	out := ""
	for range n {
		out += s
	}
	return out
}

// FuzzDecideRequest: any body yields a valid request or an *apiError with a 4xx status,
// never a panic.
func FuzzDecideRequest(f *testing.F) {
	for _, s := range []string{
		`{"action":"login","subject":{"id":"u1"},"device":{"id":"d"},"context":{"ip":"::1","country":"US","amount":1e3}}`,
		`{"action":"payout","subject":{"id":""}}`, `{`, `[]`, `null`, `{"action":null}`, `{"subject":{"id":{"a":[1,2]}}}`,
		`{"action":"login","subject":{"id":"u"},"context":{"ip":"fe80::1%eth0"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := parseDecideRequest(body, known, actions)
		if err == nil {
			if _, ok := known(p.Action); p.userID == "" || !ok || p.policy == nil {
				t.Fatalf("accepted an invalid request: %q", body)
			}
			return
		}
		var ae *apiError
		if !errors.As(err, &ae) || ae.status < 400 || ae.status >= 500 {
			t.Fatalf("body %q: err = %v", body, err)
		}
	})
}

// TestStoreRefusalIsTheCallersInput checks that a record the store refuses as invalid is
// answered 400, not 500: it was built from the request.
func TestStoreRefusalIsTheCallersInput(t *testing.T) {
	err := storeProblem(fmt.Errorf("put list entry: %w: not valid UTF-8 text", store.ErrInvalidRecord))
	var ae *apiError
	if !errors.As(err, &ae) || ae.status != fiber.StatusBadRequest || ae.code != CodeInvalidRequest {
		t.Fatalf("storeProblem(invalid record) = %#v, want a 400 %s", err, CodeInvalidRequest)
	}
	err = storeProblem(fmt.Errorf("x: %w", store.ErrUnavailable))
	if !errors.As(err, &ae) || ae.status != fiber.StatusServiceUnavailable {
		t.Fatalf("storeProblem(unavailable) = %#v, want a 503", err)
	}
}

func TestTooDeep(t *testing.T) {
	nest := func(n int) string { return repeat("[", n) + repeat("]", n) }
	for _, tc := range []struct {
		body string
		want bool
	}{
		{nest(32), false},
		{nest(33), true},
		{`{"a":"` + repeat("[", 100) + `"}`, false},     // brackets inside a string
		{`{"a":"\"` + repeat("{", 100) + `\\"}`, false}, // escaped quotes do not end the string
		{`{"a":"\\"` + nest(40) + `}`, true},            // an escaped backslash does
		{`{"action":"login","subject":{"id":"u"}}`, false},
	} {
		if got := tooDeep([]byte(tc.body), 32); got != tc.want {
			t.Errorf("tooDeep(%.60q) = %v, want %v", tc.body, got, tc.want)
		}
	}
	err := parse(`{"action":"login","subject":{"id":"u"},"behavior":{"x":` + nest(40) + `}}`)
	var ae *apiError
	if !errors.As(err, &ae) || ae.status != fiber.StatusBadRequest || ae.code != CodeInvalidRequest {
		t.Fatalf("a body nested 42 deep: %v", err)
	}
	if err := parse(`{"action":"login","subject":{"id":"u"},"behavior":{"x":` + nest(28) + `}}`); err != nil {
		t.Fatalf("a body nested 30 deep: %v", err)
	}
}

// FuzzTooDeep compares tooDeep with the depth encoding/json's tokenizer sees, for valid JSON.
func FuzzTooDeep(f *testing.F) {
	for _, s := range []string{`[[["\"]"]]]`, `{"a":{"b":[1,{"c":"}"}]}}`, `"\\"`, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			tooDeep(b, 3) // must not panic
			return
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		depth, deepest := 0, 0
		for {
			tok, err := dec.Token()
			if err != nil {
				break
			}
			switch tok {
			case json.Delim('{'), json.Delim('['):
				depth++
				deepest = max(deepest, depth)
			case json.Delim('}'), json.Delim(']'):
				depth--
			}
		}
		for _, limit := range []int{0, 1, 2, 3, 5} {
			if got := tooDeep(b, limit); got != (deepest > limit) {
				t.Fatalf("tooDeep(%q, %d) = %v, but the text nests %d deep", b, limit, got, deepest)
			}
		}
	})
}

func TestOutOfRangeNumber(t *testing.T) {
	for _, body := range []string{
		`{"action":"login","subject":{"id":"u"},"context":{"amount":1e400}}`,
		`{"action":"login","subject":{"id":"u"},"behavior":{"x":-1e999}}`,
	} {
		err := parse(body)
		var ae *apiError
		if !errors.As(err, &ae) || ae.status != fiber.StatusBadRequest || len(ae.fields) != 1 || !strings.Contains(ae.fields[0].Detail, "beyond the range") {
			t.Errorf("%s: %v", body, err)
		}
	}
}

// BenchmarkParseDecideRequest parses a full login body (every documented field).
func BenchmarkParseDecideRequest(b *testing.B) {
	body := []byte(`{"action":"login","subject":{"id":"user-42","account_age_days":12,"country":"DE","email_verified":true,"phone_verified":true},` +
		`"device":{"id":"dev-9f3","platform":"ios","emulator":false,"rooted":false},` +
		`"context":{"ip":"203.0.113.7","country":"DE","amount":1800,"currency":"EUR","payout_method":"bank","new_beneficiary":true,"auth_method":"password","failed_attempts":0},` +
		`"behavior":{"bot_score":0.05,"session_age_seconds":310,"paste_in_credentials":false}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseDecideRequest(body, known, actions); err != nil {
			b.Fatal(err)
		}
	}
}
