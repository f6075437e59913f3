package http_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"mime"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	httpapi "github.com/verdict-engine/verdict/adapters/http"
	"github.com/verdict-engine/verdict/adapters/providers"
	"github.com/verdict-engine/verdict/adapters/providers/sandbox"
	"github.com/verdict-engine/verdict/store"
)

// apiDoc is the served openapi.json, and the operations and statuses a test has checked
// real answers of against it.
type apiDoc struct {
	root    map[string]any
	checked map[string]bool // "get /v1/x/{id} 200"
}

func loadAPIDoc(t *testing.T) *apiDoc {
	t.Helper()
	r := newEnv(t, options{}).do(t, "GET", "/openapi.json", "")
	var root map[string]any
	if err := json.Unmarshal(r.body, &root); err != nil {
		t.Fatal(err)
	}
	return &apiDoc{root: root, checked: map[string]bool{}}
}

// template returns the documented path that path (without its query) is an instance of,
// preferring the one with the most literal segments, as the router does.
func (d *apiDoc) template(path string) (string, bool) {
	path, _, _ = strings.Cut(path, "?")
	segs := strings.Split(path, "/")
	best, bestLiterals := "", -1
	for tmpl := range d.root["paths"].(map[string]any) {
		ts := strings.Split(tmpl, "/")
		if len(ts) != len(segs) {
			continue
		}
		literals, ok := 0, true
		for i, s := range ts {
			switch {
			case strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}"):
				ok = ok && segs[i] != ""
			case s == segs[i]:
				literals++
			default:
				ok = false
			}
		}
		if ok && literals > bestLiterals {
			best, bestLiterals = tmpl, literals
		}
	}
	return best, bestLiterals >= 0
}

// resolve follows a local $ref ("#/components/...").
func (d *apiDoc) resolve(ref string) (any, error) {
	p, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, fmt.Errorf("$ref %q is not local", ref)
	}
	var cur any = d.root
	for _, tok := range strings.Split(p, "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("$ref %q: %q is not in an object", ref, tok)
		}
		if cur, ok = m[tok]; !ok {
			return nil, fmt.Errorf("$ref %q: no %q", ref, tok)
		}
	}
	return cur, nil
}

// check validates an answer against the description of its operation and status: the
// status is documented, a body is sent exactly when content is documented, in one of the
// documented media types, and a JSON body matches the schema.
func (d *apiDoc) check(t *testing.T, method, path string, r resp) {
	t.Helper()
	tmpl, ok := d.template(path)
	if !ok {
		t.Errorf("%s %s: no path of openapi.json matches", method, path)
		return
	}
	m := strings.ToLower(method)
	op, ok := d.root["paths"].(map[string]any)[tmpl].(map[string]any)[m].(map[string]any)
	if !ok {
		t.Errorf("%s %s: openapi.json does not describe the operation", method, tmpl)
		return
	}
	what := fmt.Sprintf("%s %s → %d", method, tmpl, r.status)
	resps, _ := op["responses"].(map[string]any)
	rd, ok := resps[strconv.Itoa(r.status)]
	if !ok {
		t.Errorf("%s: status not documented (body %.300s)", what, r.body)
		return
	}
	d.checked[m+" "+tmpl+" "+strconv.Itoa(r.status)] = true
	rdm := rd.(map[string]any)
	if ref, ok := rdm["$ref"].(string); ok {
		x, err := d.resolve(ref)
		if err != nil {
			t.Errorf("%s: %v", what, err)
			return
		}
		rdm = x.(map[string]any)
	}
	content, hasContent := rdm["content"].(map[string]any)
	if !hasContent {
		if len(r.body) > 0 {
			t.Errorf("%s: a body is sent but none is documented: %.300s", what, r.body)
		}
		return
	}
	mt, _, err := mime.ParseMediaType(r.header.Get("Content-Type"))
	if err != nil {
		t.Errorf("%s: Content-Type %q: %v", what, r.header.Get("Content-Type"), err)
		return
	}
	media, ok := content[mt].(map[string]any)
	if !ok {
		t.Errorf("%s: Content-Type %s is not one of the documented %v", what, mt, keys(content))
		return
	}
	if mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		return
	}
	schema, ok := media["schema"]
	if !ok {
		t.Errorf("%s: %s without a schema", what, mt)
		return
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Errorf("%s: body is not JSON: %v: %.300s", what, err, r.body)
		return
	}
	if errs := d.validate(schema, v); len(errs) > 0 {
		t.Errorf("%s: the body does not match its schema:\n\t%s\nbody: %s", what, strings.Join(errs, "\n\t"), r.body)
	}
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// validate checks v against schema and returns what is wrong, each prefixed with the
// JSON pointer of the value.
func (d *apiDoc) validate(schema, v any) []string {
	errs, _ := d.validateAt(schema, v, "")
	return errs
}

// schemaKeywords are the keywords validateAt understands or may ignore (annotations). A
// schema using another one fails the test rather than being checked less than it says.
var schemaKeywords = map[string]bool{
	"$ref": true, "type": true, "enum": true, "allOf": true, "oneOf": true, "anyOf": true,
	"properties": true, "required": true, "additionalProperties": true, "unevaluatedProperties": true,
	"items": true, "maxItems": true, "minItems": true, "pattern": true, "format": true,
	"minLength": true, "maxLength": true, "minimum": true, "maximum": true,
	"description": true, "example": true, "examples": true, "title": true,
}

// validateAt validates v at pointer ptr. It returns, besides the errors, the names of the
// properties of v this schema evaluated (properties, additionalProperties, and those of
// its $ref, allOf and matching oneOf/anyOf subschemas), which unevaluatedProperties needs.
func (d *apiDoc) validateAt(schema, v any, ptr string) (errs []string, evaluated map[string]bool) {
	evaluated = map[string]bool{}
	fail := func(format string, args ...any) {
		at := ptr
		if at == "" {
			at = "/"
		}
		errs = append(errs, at+": "+fmt.Sprintf(format, args...))
	}
	if b, ok := schema.(bool); ok {
		if !b {
			fail("no value is allowed here")
		}
		return errs, evaluated
	}
	s, ok := schema.(map[string]any)
	if !ok {
		fail("schema is %T, not an object", schema)
		return errs, evaluated
	}
	for k := range s {
		if !schemaKeywords[k] {
			fail("schema keyword %q is not supported by this test's validator", k)
		}
	}
	merge := func(e []string, ev map[string]bool) {
		errs = append(errs, e...)
		for k := range ev {
			evaluated[k] = true
		}
	}
	if ref, ok := s["$ref"].(string); ok {
		target, err := d.resolve(ref)
		if err != nil {
			fail("%v", err)
		} else {
			merge(d.validateAt(target, v, ptr))
		}
	}
	if all, ok := s["allOf"].([]any); ok {
		for _, sub := range all {
			merge(d.validateAt(sub, v, ptr))
		}
	}
	for _, kw := range []string{"oneOf", "anyOf"} {
		subs, ok := s[kw].([]any)
		if !ok {
			continue
		}
		matched := 0
		var why []string
		for i, sub := range subs {
			e, ev := d.validateAt(sub, v, ptr)
			if len(e) == 0 {
				matched++
				merge(nil, ev)
			} else {
				why = append(why, fmt.Sprintf("[%d] %s", i, strings.Join(e, "; ")))
			}
		}
		if matched == 0 || kw == "oneOf" && matched > 1 {
			fail("matches %d of the %d %s schemas: %s", matched, len(subs), kw, strings.Join(why, " | "))
		}
	}
	if typ, ok := s["type"]; ok {
		var types []string
		switch t := typ.(type) {
		case string:
			types = []string{t}
		case []any:
			for _, x := range t {
				types = append(types, x.(string))
			}
		}
		if !slices.ContainsFunc(types, func(t string) bool { return hasType(v, t) }) {
			fail("is %s, want %s", jsonType(v), strings.Join(types, " or "))
			return errs, evaluated
		}
	}
	if enum, ok := s["enum"].([]any); ok {
		if !slices.ContainsFunc(enum, func(e any) bool { return reflect.DeepEqual(normalize(v), e) }) {
			fail("%v is not one of %v", v, enum)
		}
	}
	switch x := v.(type) {
	case string:
		if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(x) {
			fail("%q does not match %s", x, p)
		}
		if n, ok := s["minLength"].(float64); ok && float64(len([]rune(x))) < n {
			fail("shorter than %v", n)
		}
		if n, ok := s["maxLength"].(float64); ok && float64(len([]rune(x))) > n {
			fail("longer than %v", n)
		}
		if f, ok := s["format"].(string); ok {
			if err := checkFormat(f, x); err != nil {
				fail("%q is not a %s: %v", x, f, err)
			}
		}
	case json.Number:
		f, _ := x.Float64()
		if m, ok := s["minimum"].(float64); ok && f < m {
			fail("%v is below the minimum %v", x, m)
		}
		if m, ok := s["maximum"].(float64); ok && f > m {
			fail("%v is above the maximum %v", x, m)
		}
	case []any:
		if n, ok := s["maxItems"].(float64); ok && float64(len(x)) > n {
			fail("%d items, at most %v allowed", len(x), n)
		}
		if n, ok := s["minItems"].(float64); ok && float64(len(x)) < n {
			fail("%d items, at least %v required", len(x), n)
		}
		if items, ok := s["items"]; ok {
			for i, it := range x {
				e, _ := d.validateAt(items, it, ptr+"/"+strconv.Itoa(i))
				errs = append(errs, e...)
			}
		}
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		for name, sub := range props {
			if pv, ok := x[name]; ok {
				e, _ := d.validateAt(sub, pv, ptr+"/"+name)
				errs = append(errs, e...)
				evaluated[name] = true
			}
		}
		if req, ok := s["required"].([]any); ok {
			for _, name := range req {
				if _, ok := x[name.(string)]; !ok {
					fail("lacks required property %q", name)
				}
			}
		}
		if ap, ok := s["additionalProperties"]; ok {
			for _, name := range keys(x) {
				if _, declared := props[name]; declared {
					continue
				}
				if b, isBool := ap.(bool); isBool && !b {
					fail("has undocumented property %q", name)
					continue
				}
				e, _ := d.validateAt(ap, x[name], ptr+"/"+name)
				errs = append(errs, e...)
				evaluated[name] = true
			}
		}
		if up, ok := s["unevaluatedProperties"]; ok {
			if b, isBool := up.(bool); !isBool || b {
				fail("only unevaluatedProperties: false is supported")
			} else {
				for _, name := range keys(x) {
					if !evaluated[name] {
						fail("has undocumented property %q", name)
					}
				}
			}
		}
	}
	return errs, evaluated
}

func hasType(v any, t string) bool {
	switch t {
	case "integer":
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		f, err := n.Float64()
		return err == nil && f == math.Trunc(f)
	default:
		return jsonType(v) == t
	}
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// normalize turns json.Number into float64, as the description's numbers are decoded.
func normalize(v any) any {
	if n, ok := v.(json.Number); ok {
		f, _ := n.Float64()
		return f
	}
	return v
}

func checkFormat(format, s string) error {
	switch format {
	case "date-time":
		_, err := time.Parse(time.RFC3339Nano, s)
		return err
	case "uuid":
		_, err := uuid.Parse(s)
		if err == nil && len(s) != 36 {
			err = fmt.Errorf("not in the 8-4-4-4-12 form")
		}
		return err
	case "uri":
		u, err := url.Parse(s)
		if err == nil && !u.IsAbs() {
			err = fmt.Errorf("not absolute")
		}
		return err
	}
	return nil
}

// apiCaller sends requests to one server and checks every answer against the description.
type apiCaller struct {
	t   *testing.T
	doc *apiDoc
	do  func(method, path, body string, hdr ...string) resp
}

// call sends the request, fails the test unless the status is want, checks the answer
// against the description and returns its JSON object (nil for another body).
func (c apiCaller) call(method, path, body string, want int, hdr ...string) map[string]any {
	c.t.Helper()
	r := c.do(method, path, body, hdr...)
	if r.status != want {
		c.t.Fatalf("%s %s: %d, want %d: %s", method, path, r.status, want, r.body)
	}
	c.doc.check(c.t, method, path, r)
	var m map[string]any
	_ = json.Unmarshal(r.body, &m)
	return m
}

// webhookSecret signs the sandbox provider's webhooks in TestOpenAPIResponsesMatchSchemas.
var webhookSecret = []byte("openapi-test-webhook-secret-0123456789")

// sandboxWebhook returns a signed sandbox webhook for a session: body and headers.
func sandboxWebhook(t *testing.T, eventID, ref, userID, status string, at time.Time) (string, []string) {
	t.Helper()
	reasons := []string{}
	if status == store.StatusPendingReview {
		reasons = []string{"DOCUMENT_QUALITY_LOW"}
	}
	b, err := json.Marshal(map[string]any{
		"type": "verification.decided", "timestamp": at.UTC().Format(time.RFC3339Nano),
		"data": map[string]any{"session_id": ref, "user_id": userID, "status": status, "score": 55, "reason_codes": reasons},
	})
	if err != nil {
		t.Fatal(err)
	}
	var hdr []string
	for k, v := range sandbox.Sign(webhookSecret, eventID, time.Now().Unix(), b) {
		hdr = append(hdr, k, v)
	}
	return string(b), hdr
}

// TestOpenAPIResponsesMatchSchemas drives every operation of the API against real servers
// (the embedded store, the sandbox provider, a local evidence bucket) and checks each
// answer against openapi.json: the status is documented, the Content-Type is one of the
// documented media types, and a JSON body matches the schema of that status, with no
// undocumented property where the schema is closed. Every documented 2xx answer must
// have been checked.
func TestOpenAPIResponsesMatchSchemas(t *testing.T) {
	doc := loadAPIDoc(t)

	t.Run("static", func(t *testing.T) {
		e := newEnv(t, options{})
		c := apiCaller{t, doc, func(m, p, b string, h ...string) resp { return e.do(t, m, p, b, h...) }}
		c.call("GET", "/healthz", "", 200)
		c.call("GET", "/readyz", "", 200)
		c.call("GET", "/metrics", "", 200)
		c.call("GET", "/openapi.json", "", 200)
		c.call("GET", "/review", "", 200)
		c.call("GET", "/review/app.js", "", 200)
		c.call("GET", "/review/app.css", "", 200)
		c.call("GET", "/review/nothing.txt", "", 404)
	})

	t.Run("decisions and lists", func(t *testing.T) {
		e := newEnv(t, options{})
		c := apiCaller{t, doc, func(m, p, b string, h ...string) resp { return e.do(t, m, p, b, h...) }}
		d := c.call("POST", "/v1/decide", loginBody, 200)
		c.call("POST", "/v1/decide?debug=timings", loginBody, 200)
		c.call("POST", "/v1/decide", `{"action":"payout","subject":{"id":"user-7","account_age_days":400},"device":{"id":"dev-7"},"context":{"ip":"198.51.100.4","amount":150,"currency":"EUR","payout_method":"bank"}}`, 200)
		c.call("POST", "/v1/decide", loginBody, 200, "Idempotency-Key", "oa-1")
		if r := e.do(t, "POST", "/v1/decide", loginBody, "Idempotency-Key", "oa-1"); r.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("not a replay: %d %s", r.status, r.body)
		} else {
			doc.check(t, "POST", "/v1/decide", r)
		}
		c.call("POST", "/v1/decide", `{"action":"login"}`, 400)
		id := d["decision_id"].(string)
		c.call("GET", "/v1/decisions/"+id, "", 200)
		c.call("GET", "/v1/decisions/"+uuid.NewString(), "", 404)
		c.call("POST", "/v1/decisions/"+id+"/label", `{"label":"fraud","tags":["ato"]}`, 201)
		c.call("POST", "/v1/decisions/"+id+"/label", `{"label":"fraud"}`, 200)
		c.call("POST", "/v1/labels", "decision_id,label,tags\n"+id+",chargeback,case-1|cb\n", 200, "Content-Type", "text/csv")

		c.call("PUT", "/v1/lists/deny_ip/entries/10.0.0.0%2F8", "", 201)
		c.call("PUT", "/v1/lists/deny_ip/entries/10.0.0.0%2F8", `{"reason":"abuse reports"}`, 200)
		c.call("PUT", "/v1/lists/deny_user/entries/user-9", `{"reason":"chargebacks"}`, 201)
		c.call("GET", "/v1/lists/deny_ip", "", 200)
		c.call("GET", "/v1/lists/allow_country", "", 200)
		c.call("DELETE", "/v1/lists/deny_ip/entries/10.0.0.0%2F8", "", 204)
		c.call("DELETE", "/v1/lists/deny_ip/entries/10.0.0.0%2F8", "", 404)
		c.call("GET", "/v1/lists/nolist", "", 400)

		c.call("DELETE", "/v1/subjects/user-42", "", 200)
	})

	t.Run("degraded decision", func(t *testing.T) {
		e := newEnv(t, options{committer: func(*store.GroupCommitter) httpapi.Committer { return failingCommitter{} }})
		c := apiCaller{t, doc, func(m, p, b string, h ...string) resp { return e.do(t, m, p, b, h...) }}
		if d := c.call("POST", "/v1/decide", loginBody, 200); d["degraded"] == nil {
			t.Fatalf("not degraded: %v", d)
		}
	})

	t.Run("verifications, webhooks and reviews", func(t *testing.T) {
		e := newEnv(t, options{verify: true, sandbox: sandbox.Config{Secrets: providers.Secrets{webhookSecret}, Delay: time.Hour}})
		c := apiCaller{t, doc, func(m, p, b string, h ...string) resp { return e.do(t, m, p, b, h...) }}
		const consent = `{"policy_hash":"sha256:4f2a9c01","locale":"en-GB","scope":["identity_verification"]}`

		// A session with consent and evidence, through submission and its webhooks.
		body := `{"user_id":"user-oa","provider":"sandbox","consent":` + consent + `}`
		v1 := c.call("POST", "/v1/verifications", body, 201, "Idempotency-Key", "oa-v1")
		c.call("POST", "/v1/verifications", body, 200, "Idempotency-Key", "oa-v1")
		id1 := v1["verification_id"].(string)
		c.call("GET", "/v1/verifications?user_id=user-oa", "", 200)
		c.call("GET", "/v1/verifications?user_id=nobody", "", 200)
		c.call("GET", "/v1/verifications/"+id1, "", 200)
		c.call("GET", "/v1/verifications/ver_"+strings.Repeat("0", 32), "", 404)
		const file = "png bytes"
		sum := sha256.Sum256([]byte(file))
		added := c.call("POST", "/v1/verifications/"+id1+"/evidence", `{"items":[{"kind":"selfie","content_type":"image/png","sha256":"`+
			hex.EncodeToString(sum[:])+`","size":`+strconv.Itoa(len(file))+`}]}`, 201)
		u, err := url.Parse(added["uploads"].([]any)[0].(map[string]any)["url"].(string))
		if err != nil {
			t.Fatal(err)
		}
		c.call("PUT", u.RequestURI(), file, 204, "Content-Type", "image/png")
		c.call("PUT", u.RequestURI(), file, 403, "Content-Type", "image/jpeg")
		c.call("GET", "/v1/verifications/"+id1, "", 200) // evidence uploaded
		c.call("POST", "/v1/verifications/"+id1+"/submit", "", 200)
		ref1 := v1["provider_ref"].(string)
		wb, wh := sandboxWebhook(t, "msg_oa_1", ref1, "user-oa", store.StatusApproved, time.Now())
		if r := c.call("POST", "/v1/webhooks/sandbox", wb, 200, wh...); r["result"] != "applied" {
			t.Fatalf("webhook: %v", r)
		}
		if r := c.call("POST", "/v1/webhooks/sandbox", wb, 200, wh...); r["result"] != "duplicate" {
			t.Fatalf("webhook again: %v", r)
		}
		wb, wh = sandboxWebhook(t, "msg_oa_2", ref1, "user-oa", store.StatusRejected, time.Now())
		if r := c.call("POST", "/v1/webhooks/sandbox", wb, 200, wh...); r["result"] != "not_applicable" {
			t.Fatalf("webhook on a final session: %v", r)
		}
		c.call("GET", "/v1/verifications/"+id1, "", 200) // last_event_at, score, approved
		c.call("POST", "/v1/webhooks/sandbox", wb, 401)

		// A session without consent, given it later, sent to review by the provider.
		const reviewUser = "jane.review@example.com"
		v2 := c.call("POST", "/v1/verifications", `{"user_id":"`+reviewUser+`","provider":"sandbox"}`, 201)
		id2 := v2["verification_id"].(string)
		c.call("POST", "/v1/verifications/"+id2+"/evidence", `{"items":[{"kind":"selfie","content_type":"image/png","sha256":"`+
			hex.EncodeToString(sum[:])+`","size":9}]}`, 409) // consent_required
		c.call("POST", "/v1/verifications/"+id2+"/consent", consent, 200)
		now := time.Now()
		wb, wh = sandboxWebhook(t, "msg_oa_3", v2["provider_ref"].(string), reviewUser, store.StatusPendingReview, now)
		c.call("POST", "/v1/webhooks/sandbox", wb, 200, wh...)
		wb, wh = sandboxWebhook(t, "msg_oa_4", v2["provider_ref"].(string), reviewUser, store.StatusApproved, now.Add(-time.Minute))
		if r := c.call("POST", "/v1/webhooks/sandbox", wb, 200, wh...); r["result"] != "stale" {
			t.Fatalf("older webhook: %v", r)
		}
		// A webhook naming a session Verdict has not seen, with its user: a placeholder.
		wb, wh = sandboxWebhook(t, "msg_oa_5", "sbx_unseen", "user-unseen", store.StatusSubmitted, now)
		c.call("POST", "/v1/webhooks/sandbox", wb, 200, wh...)

		// A session cancelled.
		v3 := c.call("POST", "/v1/verifications", `{"user_id":"user-oa","provider":"sandbox"}`, 201)
		c.call("POST", "/v1/verifications/"+v3["verification_id"].(string)+"/cancel", "", 200)
		c.call("POST", "/v1/verifications/"+v3["verification_id"].(string)+"/cancel", "", 409)

		// The review queue: the session above and a decision sent to review because of it.
		d := c.call("POST", "/v1/decide", `{"action":"onboarding","subject":{"id":"`+reviewUser+`","email":"`+reviewUser+`","email_verified":true},"context":{"ip":"203.0.113.50","country":"DE"}}`, 200)
		if d["outcome"] != "review" {
			t.Fatalf("decision: %v", d)
		}
		decisionID := d["decision_id"].(string)
		c.call("GET", "/v1/reviews", "", 200)
		c.call("GET", "/v1/reviews?unmask=true&limit=10", "", 200)
		c.call("GET", "/v1/reviews?limit=0", "", 400)
		c.call("POST", "/v1/reviews/"+id2+"/decision", `{"outcome":"approved","reason":"DOCUMENT_VERIFIED_MANUALLY"}`, 409)
		c.call("POST", "/v1/reviews/"+id2+"/claim", "", 200)
		c.call("POST", "/v1/reviews/"+decisionID+"/claim", "", 200)
		c.call("GET", "/v1/reviews", "", 200) // claimed items
		c.call("POST", "/v1/reviews/"+id2+"/decision", `{"outcome":"approved","reason":"DOCUMENT_VERIFIED_MANUALLY","note":"hologram checked"}`, 200)
		c.call("POST", "/v1/reviews/"+decisionID+"/decision", `{"outcome":"block","reason":"SYNTHETIC_IDENTITY"}`, 200)
		c.call("GET", "/v1/decisions/"+decisionID, "", 200) // with the reviewer's resolution
		c.call("POST", "/v1/reviews/"+decisionID+"/claim", "", 404)

		c.call("DELETE", "/v1/subjects/"+url.PathEscape(reviewUser), "", 200)
		c.call("GET", "/v1/verifications/"+id2, "", 200) // after erasure
	})

	t.Run("policies", func(t *testing.T) {
		e := newPolicyEnv(t)
		as := func(key string) apiCaller {
			return apiCaller{t, doc, func(m, p, b string, h ...string) resp {
				if key == "" {
					return e.do(t, m, p, b, h...)
				}
				return e.as(t, key, m, p, b)
			}}
		}
		alice, bob := as(aliceKey), as(bobKey)
		alice.call("GET", "/v1/policies", "", 200) // nothing published
		body := publishBody(t, "payout-2026.12.2", payoutVersion(t, "version: payout-2026.12.1", "version: payout-2026.12.2"))
		v2 := alice.call("POST", "/v1/policies", body, 201)["hash"].(string)
		bob.call("POST", "/v1/policies", body, 200)
		v3 := alice.call("POST", "/v1/policies", publishBody(t, "payout-2026.12.3", payoutVersion(t, "version: payout-2026.12.1", "version: payout-2026.12.3")), 201)["hash"].(string)
		alice.call("GET", "/v1/policies/"+url.PathEscape(v2), "", 200)
		alice.call("GET", "/v1/policies/sha256:"+strings.Repeat("0", 64), "", 404)
		alice.call("POST", "/v1/policies/payout/activate", `{"version":"`+v2+`"}`, 200)
		alice.call("POST", "/v1/policies/payout/rollback", "", 200)
		pending := alice.call("POST", "/v1/policies/payout/activate", `{"version":"`+v2+`","require_approval":true}`, 202)
		alice.call("POST", "/v1/policies/activations/"+pending["id"].(string)+"/approve", "", 409)
		bob.call("POST", "/v1/policies/activations/"+pending["id"].(string)+"/approve", "", 200)
		alice.call("GET", "/v1/policies/payout/activations", "", 200)
		alice.call("PUT", "/v1/policies/payout/shadow", `{"versions":["`+v3+`"]}`, 200)
		alice.call("GET", "/v1/policies", "", 200) // live state with active and shadow versions
		e.sync(t)
		decidePolicy(t, e)
		if err := e.shadow.Close(t.Context()); err != nil { // drains the shadow queue
			t.Fatal(err)
		}
		alice.call("GET", "/v1/policies/payout/shadow", "", 200)
		alice.call("GET", "/v1/policies/payout/shadow?since=yesterday", "", 400)
		// A misspelt action is not answered with an empty history.
		alice.call("GET", "/v1/policies/payuot/shadow", "", 422)
		alice.call("GET", "/v1/policies/payuot/activations", "", 422)
		alice.call("POST", "/v1/policies/payuot/rollback", "", 422)
		alice.call("PUT", "/v1/policies/payout/shadow", `{"versions":[]}`, 200)
		as("").call("GET", "/v1/policies", "", 401)
		as(shopKey).call("GET", "/v1/policies", "", 403)
	})

	if t.Failed() {
		return
	}
	// Every documented success answer was checked against a real one.
	for path, ops := range doc.root["paths"].(map[string]any) {
		for method, op := range ops.(map[string]any) {
			for status := range op.(map[string]any)["responses"].(map[string]any) {
				if strings.HasPrefix(status, "2") && !doc.checked[method+" "+path+" "+status] {
					t.Errorf("%s %s → %s is documented but no answer was checked against it", strings.ToUpper(method), path, status)
				}
			}
		}
	}
}

// failingCommitter stores nothing: every decision is answered by its fail mode.
type failingCommitter struct{}

func (failingCommitter) Commit(context.Context, store.DecisionRecord) error {
	return store.ErrUnavailable
}

// schemaOf returns the JSON schema of an operation's answer with status.
func (d *apiDoc) schemaOf(t *testing.T, method, tmpl, status string) any {
	t.Helper()
	r, err := d.resolve("#/paths/" + strings.ReplaceAll(tmpl, "/", "~1") + "/" + method + "/responses/" + status + "/content/application~1json/schema")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestOpenAPIValidatorCatchesDrift: the validator of TestOpenAPIResponsesMatchSchemas
// refuses real answers that gained a field, lost a required one or changed a type.
func TestOpenAPIValidatorCatchesDrift(t *testing.T) {
	doc := loadAPIDoc(t)
	e := newEnv(t, options{verify: true})
	decode := func(b []byte) map[string]any {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	created := e.do(t, "POST", "/v1/verifications", `{"user_id":"user-drift","provider":"sandbox"}`)
	id := decode(created.body)["verification_id"].(string)
	decided := e.do(t, "POST", "/v1/decide", loginBody)
	for _, tc := range []struct {
		name, method, tmpl, status string
		body                       []byte
		mutate                     func(m map[string]any)
	}{
		{"a new field", "get", "/v1/verifications/{id}", "200", e.do(t, "GET", "/v1/verifications/"+id, "").body,
			func(m map[string]any) { m["decided_by"] = "x" }},
		{"a required field gone", "get", "/v1/verifications/{id}", "200", e.do(t, "GET", "/v1/verifications/"+id, "").body,
			func(m map[string]any) { delete(m, "status") }},
		{"null turned absent", "get", "/v1/verifications/{id}", "200", e.do(t, "GET", "/v1/verifications/"+id, "").body,
			func(m map[string]any) { delete(m, "consent") }},
		{"client outside creation", "get", "/v1/verifications/{id}", "200", e.do(t, "GET", "/v1/verifications/"+id, "").body,
			func(m map[string]any) { m["client"] = map[string]any{"token": "t"} }},
		{"a status out of the enum", "post", "/v1/verifications", "201", created.body,
			func(m map[string]any) { m["status"] = "done" }},
		{"a nested new field", "post", "/v1/verifications", "201", created.body,
			func(m map[string]any) { m["client"].(map[string]any)["secret"] = "s" }},
		{"a number as a string", "post", "/v1/decide", "200", decided.body,
			func(m map[string]any) { m["score"] = "20" }},
		{"the stored input in the live answer", "post", "/v1/decide", "200", decided.body,
			func(m map[string]any) { m["input"] = map[string]any{} }},
		{"a reason with a new field", "post", "/v1/decide", "200", e.do(t, "POST", "/v1/decide", `{"action":"payout","subject":{"id":"user-d"},"context":{"amount":10}}`).body,
			func(m map[string]any) { m["reasons"].([]any)[0].(map[string]any)["weight"] = json.Number("1") }},
	} {
		schema := doc.schemaOf(t, tc.method, tc.tmpl, tc.status)
		m := decode(tc.body)
		if errs := doc.validate(schema, m); len(errs) > 0 {
			t.Fatalf("%s: the real answer does not validate: %v", tc.name, errs)
		}
		tc.mutate(m)
		if errs := doc.validate(schema, m); len(errs) == 0 {
			t.Errorf("%s: not caught", tc.name)
		} else {
			t.Logf("%s: %s", tc.name, errs[0])
		}
	}
}
