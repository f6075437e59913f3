package onfido

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/verdict-engine/verdict/adapters/providers"
	"github.com/verdict-engine/verdict/store"
)

// docVector is the signed delivery of Onfido's own client library tests (onfido-python
// test_webhook_event_verifier.py): the raw body, the webhook token and X-SHA2-Signature.
const (
	docVectorBody   = `{"payload":{"resource_type":"check","action":"check.completed","object":{"id":"f2302f45-227d-413d-ad61-09ec077a086a","status":"complete","completed_at_iso8601":"2024-04-04T09:21:21Z","href":"https://api.onfido.com/v3.6/checks/f2302f45-227d-413d-ad61-09ec077a086a"}}}`
	docVectorSecret = "wU99mE6jJ7nXOLFwZ0tJymM1lpI15pZh"
	docVectorSig    = "77ebc3e418f26be6eebb47f7ebe551321de26734fc273961e075fc9ab163d9c7"
)

var now = time.Date(2024, 4, 4, 10, 0, 0, 0, time.UTC)

func hdr(sig string) http.Header {
	h := http.Header{}
	if sig != "" {
		h.Set("x-sha2-signature", sig)
	}
	return h
}

func webhookProvider(secrets ...string) *Provider {
	var s providers.Secrets
	for _, x := range secrets {
		s = append(s, []byte(x))
	}
	return New(Config{WebhookSecrets: s})
}

func sign(secret string, body []byte) string {
	return providers.HexHMAC(providers.SHA256, []byte(secret), body)
}

func TestVerifyWebhookDocumentedVector(t *testing.T) {
	p := webhookProvider(docVectorSecret)
	ev, err := p.VerifyWebhook(hdr(docVectorSig), []byte(docVectorBody), now)
	if err != nil {
		t.Fatal(err)
	}
	want := providers.Event{
		ID:          eventID("check", "check.completed", testCheckID, "complete", "", "2024-04-04T09:21:21Z"),
		Type:        "check.completed",
		ProviderRef: testCheckID,
		OccurredAt:  time.Date(2024, 4, 4, 9, 21, 21, 0, time.UTC),
		Fetch:       true,
	}
	if diff := cmp.Diff(want, ev); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(ev.ID, "onfido:") || len(ev.ID) != len("onfido:")+32 {
		t.Errorf("ID = %q", ev.ID)
	}
	// Upper-case hex is the same signature.
	if _, err := p.VerifyWebhook(hdr(strings.ToUpper(docVectorSig)), []byte(docVectorBody), now); err != nil {
		t.Errorf("upper-case signature: %v", err)
	}
}

func TestVerifyWebhookRejects(t *testing.T) {
	body := []byte(docVectorBody)
	p := webhookProvider(docVectorSecret)
	changed := append([]byte(nil), body...)
	changed[len(changed)-5] ^= 1
	tests := []struct {
		name string
		h    providers.Header
		body []byte
		p    *Provider
		want error
	}{
		{"wrong secret", hdr(sign("other-secret", body)), body, p, providers.ErrBadSignature},
		{"one changed byte", hdr(docVectorSig), changed, p, providers.ErrBadSignature},
		{"missing header", http.Header{}, body, p, providers.ErrMissingSignature},
		{"empty header", http.Header{"X-Sha2-Signature": {""}}, body, p, providers.ErrMissingSignature},
		{"blank header", http.Header{"X-Sha2-Signature": {"   "}}, body, p, providers.ErrMissingSignature},
		{"non-hex", hdr("zz" + docVectorSig[2:]), body, p, providers.ErrBadSignature},
		{"odd length", hdr(docVectorSig[1:]), body, p, providers.ErrBadSignature},
		{"truncated", hdr(docVectorSig[:32]), body, p, providers.ErrBadSignature},
		{"sha1 of body", hdr(providers.HexHMAC(providers.SHA1, []byte(docVectorSecret), body)), body, p, providers.ErrBadSignature},
		{"prefixed", hdr("sha256=" + docVectorSig), body, p, providers.ErrBadSignature},
		{"no secret configured", hdr(docVectorSig), body, webhookProvider(), providers.ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := tt.p.VerifyWebhook(tt.h, tt.body, now)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if diff := cmp.Diff(providers.Event{}, ev); diff != "" {
				t.Errorf("event returned with an error: %s", diff)
			}
			if strings.Contains(err.Error(), docVectorSecret) || strings.Contains(err.Error(), testCheckID) {
				t.Errorf("error names a secret or body content: %v", err)
			}
		})
	}
}

func TestVerifyWebhookRotation(t *testing.T) {
	body := []byte(docVectorBody)
	p := webhookProvider("new-token", docVectorSecret)
	if _, err := p.VerifyWebhook(hdr(docVectorSig), body, now); err != nil {
		t.Errorf("signature with the old (second) secret: %v", err)
	}
	if _, err := p.VerifyWebhook(hdr(sign("new-token", body)), body, now); err != nil {
		t.Errorf("signature with the new (first) secret: %v", err)
	}
}

func TestVerifyWebhookReplaySameID(t *testing.T) {
	p := webhookProvider(docVectorSecret)
	a, err := p.VerifyWebhook(hdr(docVectorSig), []byte(docVectorBody), now)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.VerifyWebhook(hdr(docVectorSig), []byte(docVectorBody), now.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("redelivery differs (-first +second):\n%s", diff)
	}
	// Same facts with fields in another order and extra whitespace: same ID.
	reordered := []byte(`{ "payload": { "object": { "completed_at_iso8601": "2024-04-04T09:21:21Z", "status": "complete", "id": "f2302f45-227d-413d-ad61-09ec077a086a" }, "action": "check.completed", "resource_type": "check" } }`)
	c, err := p.VerifyWebhook(hdr(sign(docVectorSecret, reordered)), reordered, now)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != a.ID {
		t.Errorf("reordered body ID %q != %q", c.ID, a.ID)
	}
	// A different completion time is a different event.
	later := []byte(strings.Replace(docVectorBody, "09:21:21Z", "09:21:22Z", 1))
	d, err := p.VerifyWebhook(hdr(sign(docVectorSecret, later)), later, now)
	if err != nil {
		t.Fatal(err)
	}
	if d.ID == a.ID {
		t.Error("a different completed_at gave the same ID")
	}
}

// workflowRunBody is a workflow_run.completed delivery shaped like Onfido's schema
// (webhook_event_payload with object and resource); resource.output carries personal data.
func workflowRunBody(status string, reasons string) string {
	return `{"payload":{"resource_type":"workflow_run","action":"workflow_run.completed",` +
		`"object":{"id":"` + testRunID + `","status":"` + status + `","completed_at_iso8601":"2024-05-01T12:30:00Z",` +
		`"href":"https://api.eu.onfido.com/v3.6/workflow_runs/` + testRunID + `"},` +
		`"resource":{"id":"` + testRunID + `","applicant_id":"` + testApplicant + `","workflow_id":"` + testWorkflowID + `",` +
		`"workflow_version_id":3,"status":"` + status + `","customer_user_id":"usr_42","reasons":` + reasons + `,` +
		`"created_at":"2024-05-01T12:00:00Z","updated_at":"2024-05-01T12:30:00Z",` +
		`"dashboard_url":"https://dashboard.onfido.com/results/` + testRunID + `",` +
		`"input":{"first_name":"Jane","last_name":"Doe","email":"jane.doe@example.com"},` +
		`"output":{"first_name":"Jane","last_name":"Doe","dob":"1990-02-03","document_number":"P1234567","address":"1 Main Street"},` +
		`"error":{"type":"x","message":"Jane Doe failed"}}}}`
}

func TestWebhookEvents(t *testing.T) {
	at := time.Date(2024, 5, 1, 12, 30, 0, 0, time.UTC)
	run := func(status, reasons string, want providers.Event) (string, providers.Event) {
		want.Type, want.ProviderRef, want.UserID, want.OccurredAt = "workflow_run.completed", testRunID, "usr_42", at
		want.ID = eventID("workflow_run", "workflow_run.completed", testRunID, status, "", "2024-05-01T12:30:00Z")
		return workflowRunBody(status, reasons), want
	}
	check := func(action, status, extra string, want providers.Event) (string, providers.Event) {
		body := `{"payload":{"resource_type":"check","action":"` + action + `","object":{"id":"` + testCheckID + `","status":"` + status + `"` +
			extra + `,"completed_at_iso8601":"2024-05-01T12:30:00Z","href":"https://api.eu.onfido.com/v3.6/checks/` + testCheckID + `"}}}`
		want.Type, want.ProviderRef, want.OccurredAt = action, testCheckID, at
		want.ID = eventID("check", action, testCheckID, status, "", "2024-05-01T12:30:00Z")
		return body, want
	}
	type tc struct {
		name string
		body string
		want providers.Event
	}
	var tests []tc
	add := func(name string, body string, want providers.Event) { tests = append(tests, tc{name, body, want}) }

	add2 := func(name string) func(string, providers.Event) {
		return func(b string, w providers.Event) { add(name, b, w) }
	}
	add2("run approved")(run("approved", `[]`, providers.Event{Status: store.StatusApproved}))
	add2("run declined")(run("declined", `["Document consider","face_mismatch"]`, providers.Event{Status: store.StatusRejected,
		ReasonCodes: []string{"WORKFLOW_DECLINED", "WORKFLOW_REASON_DOCUMENT_CONSIDER", "WORKFLOW_REASON_FACE_MISMATCH"}}))
	add2("run review")(run("review", `null`, providers.Event{Status: store.StatusPendingReview, ReasonCodes: []string{"WORKFLOW_REVIEW"}}))
	add2("run abandoned")(run("abandoned", `[]`, providers.Event{Status: store.StatusExpired, ReasonCodes: []string{"WORKFLOW_ABANDONED"}}))
	add2("run error")(run("error", `[]`, providers.Event{Status: store.StatusPendingReview, ReasonCodes: []string{"WORKFLOW_ERROR"}}))
	add2("run completed, unknown status")(run("brand_new", `["x"]`, providers.Event{Fetch: true}))
	add2("run completed, still processing")(run("processing", `[]`, providers.Event{Fetch: true}))
	add2("check started")(check("check.started", "in_progress", "", providers.Event{Status: store.StatusSubmitted}))
	add2("check form completed")(check("check.form_completed", "in_progress", "", providers.Event{Status: store.StatusSubmitted}))
	add2("check withdrawn")(check("check.withdrawn", "withdrawn", "", providers.Event{Status: store.StatusExpired, ReasonCodes: []string{"CHECK_WITHDRAWN"}}))
	add2("check reopened")(check("check.reopened", "reopened", "", providers.Event{Fetch: true}))
	add2("check completed")(check("check.completed", "complete", "", providers.Event{Fetch: true}))
	add2("check completed clear")(check("check.completed", "complete", `,"result":"clear"`, providers.Event{Status: store.StatusApproved}))
	add2("check completed consider")(check("check.completed", "complete", `,"result":"consider"`, providers.Event{Status: store.StatusPendingReview, ReasonCodes: []string{"CHECK_CONSIDER"}}))
	for _, action := range []string{"report.completed", "report.withdrawn", "report.resumed", "report.cancelled", "report.awaiting_approval"} {
		body := `{"payload":{"resource_type":"report","action":"` + action + `","object":{"id":"r-1","status":"complete","completed_at_iso8601":"2024-05-01T12:30:00Z","href":"https://api.eu.onfido.com/v3.6/reports/r-1"}}}`
		add(action, body, providers.Event{ID: eventID("report", action, "r-1", "complete", "", "2024-05-01T12:30:00Z"), Type: action, ProviderRef: "r-1", OccurredAt: at})
	}
	taskBody := `{"payload":{"resource_type":"workflow_task","action":"workflow_task.started","object":{"id":"profile_data_abc","started_at_iso8601":"2024-05-01T12:10:00Z","href":"https://api.eu.onfido.com/v3.6/workflow_runs/` + testRunID + `/tasks/profile_data_abc"},` +
		`"resource":{"id":"profile_data_abc","workflow_run_id":"` + testRunID + `","task_def_id":"profile_data","input":{"first_name":"Jane"},"output":{"dob":"1990-02-03"}}}}`
	add("workflow task started", taskBody, providers.Event{ID: eventID("workflow_task", "workflow_task.started", "profile_data_abc", "", "2024-05-01T12:10:00Z", ""),
		Type: "workflow_task.started", ProviderRef: testRunID, OccurredAt: time.Date(2024, 5, 1, 12, 10, 0, 0, time.UTC)})
	add("unknown action", `{"payload":{"resource_type":"audit_log","action":"audit_log.created","object":{"id":"a-1"}}}`,
		providers.Event{ID: eventID("audit_log", "audit_log.created", "a-1", "", "", ""), Type: "audit_log.created", ProviderRef: "a-1"})
	add("odd action name", `{"payload":{"resource_type":"x","action":"Jane Doe <jane@example.com>","object":{"id":"a-2"}}}`,
		providers.Event{ID: eventID("x", "Jane Doe <jane@example.com>", "a-2", "", "", ""), Type: "unknown", ProviderRef: "a-2"})

	p := webhookProvider("secret")
	pii := []string{"Jane", "Doe", "jane.doe@example.com", "1990-02-03", "P1234567", "Main Street", testApplicant, "dashboard"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := p.VerifyWebhook(hdr(sign("secret", []byte(tt.body))), []byte(tt.body), now)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, ev); diff != "" {
				t.Errorf("event (-want +got):\n%s", diff)
			}
			s := fmt.Sprintf("%+v", ev)
			for _, x := range pii {
				if strings.Contains(s, x) {
					t.Errorf("event carries %q: %s", x, s)
				}
			}
		})
	}
}

func TestWebhookMalformed(t *testing.T) {
	bodies := []string{
		``,
		`not json`,
		`[]`,
		`null`,
		`{}`,
		`{"payload":null}`,
		`{"payload":{"action":"check.completed"}}`,
		`{"payload":{"action":"check.completed","object":{}}}`,
		`{"payload":{"action":"check.completed","object":{"id":""}}}`,
		`{"payload":{"action":"check.completed","object":{"id":42}}}`,
		`{"payload":{"action":"check.completed","object":{"id":"has space"}}}`,
		`{"payload":{"action":"check.completed","object":{"id":"a/b"}}}`,
		`{"payload":{"action":"check.completed","object":{"id":"` + strings.Repeat("a", 129) + `"}}}`,
		`{"payload":{"action":"check.completed","object":"f2302f45"}}`,
		`{"payload":{"action":["check.completed"],"object":{"id":"x"}}}`,
		`{"payload":{"action":"check.completed","object":{"id":"x"}}`,
	}
	p := webhookProvider("secret")
	for _, b := range bodies {
		ev, err := p.VerifyWebhook(hdr(sign("secret", []byte(b))), []byte(b), now)
		if !errors.Is(err, providers.ErrMalformedPayload) {
			t.Errorf("body %q: err = %v, want ErrMalformedPayload", b, err)
		}
		if ev.ID != "" {
			t.Errorf("body %q: event returned with an error", b)
		}
	}
}

func TestWebhookTimeFallbacks(t *testing.T) {
	p := webhookProvider("secret")
	tests := []struct {
		body string
		want time.Time
	}{
		{`{"payload":{"action":"check.started","object":{"id":"c","started_at_iso8601":"2024-05-01T12:00:00+02:00"}}}`, time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)},
		{`{"payload":{"action":"workflow_run.completed","object":{"id":"r","status":"approved"},"resource":{"updated_at":"2024-05-01T12:00:00.123Z"}}}`, time.Date(2024, 5, 1, 12, 0, 0, 123e6, time.UTC)},
		{`{"payload":{"action":"check.started","object":{"id":"c","completed_at_iso8601":"yesterday"}}}`, time.Time{}},
	}
	for _, tt := range tests {
		ev, err := p.VerifyWebhook(hdr(sign("secret", []byte(tt.body))), []byte(tt.body), now)
		if err != nil {
			t.Fatal(err)
		}
		if !ev.OccurredAt.Equal(tt.want) {
			t.Errorf("%s: OccurredAt = %v, want %v", tt.body, ev.OccurredAt, tt.want)
		}
	}
}
