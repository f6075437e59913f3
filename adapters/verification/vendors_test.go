package verification_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verdict-engine/verdict/adapters/providers"
	"github.com/verdict-engine/verdict/adapters/providers/onfido"
	"github.com/verdict-engine/verdict/adapters/providers/persona"
	"github.com/verdict-engine/verdict/adapters/providers/sumsub"
	"github.com/verdict-engine/verdict/adapters/providers/veriff"
	"github.com/verdict-engine/verdict/adapters/verification"
	"github.com/verdict-engine/verdict/store"
	"github.com/verdict-engine/verdict/store/sqlite"
)

// This file drives verification.Service.HandleWebhook end to end with the real vendor
// adapters (Onfido, Persona, Sumsub, Veriff) over a real sqlite store: payloads shaped like
// each vendor's documentation, signed with each vendor's documented scheme.

// vendorClock is a settable clock for the service: a delivery "arrives" shortly after the
// vendor's event time, and a Persona signature's t is read against it.
type vendorClock struct{ ns atomic.Int64 }

func (c *vendorClock) Now() time.Time  { return time.Unix(0, c.ns.Load()).UTC() }
func (c *vendorClock) Set(t time.Time) { c.ns.Store(t.UnixNano()) }

// Test credentials.
const (
	vOnfidoSecret  = "onfido-webhook-token-test"
	vOnfidoToken   = "api_sandbox.vendors-test"
	vOnfidoFlow    = "8b74cd2b-5d9a-4d39-9e2b-0c3a3e7b1f11"
	vOnfidoApplic  = "7e2c5b9e-1f0a-4b55-9d7e-3c1b2a4f6e01"
	vOnfidoRunID   = "c4f2d1a0-6b3e-4e8a-9a57-2d9c1b0e7f42"
	vPersonaSecret = "wbhsec_vendors-test"
	vSumsubSecret  = "sumsub-webhook-secret-test"
	vVeriffSecret  = "veriff-shared-secret-test"
	vVeriffAPIKey  = "veriff-api-key-test"
	vWrongSecret   = "not-the-configured-secret"
)

// vendorOnfidoAPI answers the slice of Onfido's API v3.6 that Start and Status use: create
// applicant, create workflow run, and read the run (whose status the test sets).
type vendorOnfidoAPI struct {
	mu        sync.Mutex
	runStatus map[string]map[string]any // GET /workflow_runs/{id}
	gets      int
}

func (f *vendorOnfidoAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	if r.Header.Get("Authorization") != "Token token="+vOnfidoToken {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	reply := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/applicants":
		reply(http.StatusCreated, map[string]any{"id": vOnfidoApplic, "first_name": "Verdict", "last_name": "Applicant"})
	case r.Method == http.MethodPost && r.URL.Path == "/workflow_runs":
		reply(http.StatusCreated, map[string]any{
			"id": vOnfidoRunID, "applicant_id": vOnfidoApplic, "workflow_id": vOnfidoFlow,
			"status": "awaiting_input", "sdk_token": "sdk-token-from-run",
			"link": map[string]any{"url": "https://eu.onfido.app/l/abc123"},
		})
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/workflow_runs/"):
		f.mu.Lock()
		f.gets++
		run, ok := f.runStatus[strings.TrimPrefix(r.URL.Path, "/workflow_runs/")]
		f.mu.Unlock()
		if !ok {
			reply(http.StatusNotFound, map[string]any{"error": map[string]any{"type": "resource_not_found"}})
			return
		}
		reply(http.StatusOK, run)
	default:
		reply(http.StatusNotFound, map[string]any{"error": map[string]any{"type": "resource_not_found"}})
	}
}

// Payload builders, shaped like each vendor's documented examples (adapted from the
// adapters' own fixtures), with the personal data the vendors send left in.

func onfidoRunCompleted(runID, user, status, reasons string, at time.Time) []byte {
	cu := ""
	if user != "" {
		cu = `"customer_user_id":"` + user + `",`
	}
	ts := at.UTC().Format(time.RFC3339)
	return []byte(`{"payload":{"resource_type":"workflow_run","action":"workflow_run.completed",` +
		`"object":{"id":"` + runID + `","status":"` + status + `","completed_at_iso8601":"` + ts + `",` +
		`"href":"https://api.eu.onfido.com/v3.6/workflow_runs/` + runID + `"},` +
		`"resource":{"id":"` + runID + `","applicant_id":"` + vOnfidoApplic + `","workflow_id":"` + vOnfidoFlow + `",` +
		`"workflow_version_id":3,"status":"` + status + `",` + cu + `"reasons":` + reasons + `,` +
		`"created_at":"` + at.Add(-30*time.Minute).UTC().Format(time.RFC3339) + `","updated_at":"` + ts + `",` +
		`"dashboard_url":"https://dashboard.onfido.com/results/` + runID + `",` +
		`"input":{"first_name":"Jane","last_name":"Doe","email":"jane.doe@example.com"},` +
		`"output":{"first_name":"Jane","last_name":"Doe","dob":"1990-02-03","document_number":"P1234567"}}}}`)
}

// personaEvent is an inquiry event as Persona sends it (docs.withpersona.com webhook
// examples): the event, its inquiry with reference-id (our user id) and personal data.
func personaEvent(evtID, name, inquiryID, inquiryStatus, user string, at time.Time) []byte {
	ref := `null`
	if user != "" {
		ref = `"` + user + `"`
	}
	ts := at.UTC().Format("2006-01-02T15:04:05.000Z")
	return []byte(`{
  "data": {
    "type": "event",
    "id": "` + evtID + `",
    "attributes": {
      "name": "` + name + `",
      "created-at": "` + ts + `",
      "redacted-at": null,
      "payload": {
        "data": {
          "type": "inquiry",
          "id": "` + inquiryID + `",
          "attributes": {
            "status": "` + inquiryStatus + `",
            "reference-id": ` + ref + `,
            "note": null,
            "tags": [],
            "creator": "API",
            "created-at": "` + at.Add(-20*time.Minute).UTC().Format("2006-01-02T15:04:05.000Z") + `",
            "updated-at": "` + ts + `",
            "name-first": "Alexander",
            "name-last": "Sample",
            "birthdate": "1977-08-31",
            "address-street-1": "600 California St",
            "email-address": "alexander@example.com",
            "identification-number": "Y1234567"
          },
          "relationships": {
            "account": {"data": {"type": "account", "id": "act_ndJNqdhWNi44S4Twf4bqzod2"}},
            "inquiry-template": {"data": {"type": "inquiry-template", "id": "itmpl_Ygs16MKTkA6obnF8C3Rb17dm"}}
          }
        },
        "included": []
      }
    }
  }
}`)
}

// sumsubEvent is an applicant webhook shaped like Sumsub's "User verification webhooks".
func sumsubEvent(applicantID, user, typ, reviewStatus, reviewResult string, at time.Time) []byte {
	ext := ""
	if user != "" {
		ext = `"externalUserId":"` + user + `",`
	}
	rr := ""
	if reviewResult != "" {
		rr = `"reviewResult":` + reviewResult + `,`
	}
	return []byte(`{
  "applicantId": "` + applicantID + `",
  "inspectionId": "` + applicantID + `-insp",
  "correlationId": "req-` + typ + `-` + strconv.FormatInt(at.UnixMilli(), 10) + `",
  ` + ext + `
  "levelName": "id-and-liveness",
  "type": "` + typ + `",
  ` + rr + `
  "reviewStatus": "` + reviewStatus + `",
  "createdAtMs": "` + at.UTC().Format("2006-01-02 15:04:05.000") + `",
  "sandboxMode": false
}`)
}

// veriffDecision is a decision webhook shaped like Veriff's documented sample.
func veriffDecision(sessionID, user, status string, code int, at time.Time) []byte {
	vd := `null`
	if user != "" {
		vd = `"` + user + `"`
	}
	return []byte(`{
  "status": "success",
  "verification": {
    "id": "` + sessionID + `",
    "attemptId": "e30122d1-740b-4764-853f-470374a7abf4",
    "vendorData": ` + vd + `,
    "endUserId": null,
    "status": "` + status + `",
    "code": ` + strconv.Itoa(code) + `,
    "reason": null,
    "reasonCode": null,
    "decisionTime": "` + at.UTC().Format("2006-01-02T15:04:05.000Z") + `",
    "acceptanceTime": "` + at.Add(-20*time.Minute).UTC().Format("2006-01-02T15:04:05.000Z") + `",
    "person": {"firstName": "SARAH", "lastName": "MORGAN", "dateOfBirth": "1967-03-30", "idNumber": "38508260000"},
    "document": {"type": "DRIVERS_LICENSE", "number": "MORGA753116SM9IJ", "country": "GB", "validUntil": "2032-04-20"},
    "additionalVerifiedData": {},
    "comments": []
  },
  "technicalData": {"ip": "186.153.67.122"}
}`)
}

// veriffProgress is an event webhook (session started / submitted); Veriff's documented
// event webhook carries no time.
func veriffProgress(sessionID, user, action string, code int) []byte {
	vd := `null`
	if user != "" {
		vd = `"` + user + `"`
	}
	return []byte(`{"id":"` + sessionID + `","attemptId":"e30122d1-740b-4764-853f-470374a7abf4","feature":"selfid",` +
		`"code":` + strconv.Itoa(code) + `,"action":"` + action + `","vendorData":` + vd + `,"endUserId":null}`)
}

// Signers, one per vendor's documented scheme.

func signOnfido(secret string, body []byte, _ time.Time) http.Header {
	h := http.Header{}
	h.Set(onfido.SignatureHeader, providers.HexHMAC(providers.SHA256, []byte(secret), body))
	return h
}

func signPersona(secret string, body []byte, now time.Time) http.Header {
	ts := strconv.FormatInt(now.Unix(), 10)
	h := http.Header{}
	h.Set(persona.SignatureHeader, "t="+ts+",v1="+providers.HexHMAC(providers.SHA256, []byte(secret), []byte(ts+"."+string(body))))
	return h
}

func signSumsub(secret string, body []byte, _ time.Time) http.Header {
	h := http.Header{}
	h.Set(sumsub.HeaderDigest, providers.HexHMAC(providers.SHA256, []byte(secret), body))
	h.Set(sumsub.HeaderDigestAlg, sumsub.AlgSHA256)
	return h
}

func signVeriff(secret string, body []byte, _ time.Time) http.Header {
	h := http.Header{}
	h.Set("X-HMAC-SIGNATURE", providers.HexHMAC(providers.SHA256, []byte(secret), body))
	h.Set("X-AUTH-CLIENT", vVeriffAPIKey)
	h.Set("Content-Type", "application/json")
	return h
}

// vendorDelivery is one webhook body and the vendor time it carries.
type vendorDelivery struct {
	body []byte
	at   time.Time
}

type vendorReject struct {
	name   string
	h      http.Header
	body   []byte
	reason string
}

// vendorCase is one vendor's end-to-end script.
type vendorCase struct {
	provider string
	user     string // raw user id of the session
	ref      string // the vendor's session reference (set by Create for Onfido)
	viaAPI   bool   // the session is opened with svc.Create against a fake vendor API
	secret   string
	sign     func(secret string, body []byte, now time.Time) http.Header
	// sigHeaders are the headers that carry the signature (removed for missing_signature).
	sigHeaders []string

	first      func(ref string) vendorDelivery // non-final, applied first
	firstWant  string
	final      func(ref string) vendorDelivery // approved, delivered 10 times concurrently
	earlier    func(ref string) vendorDelivery // older than final, non-final: not applied
	afterFinal func(ref string) vendorDelivery // optional: a newer event that would leave approved
	// placeholder is a delivery for an unknown reference naming user ("" for none).
	placeholder     func(ref, user string) vendorDelivery
	placeholderRef  string
	placeholderWant string
	extraRejects    func(c *vendorCase, final vendorDelivery, now time.Time) []vendorReject
	// staleTimestamp, when set, re-signs a body with a timestamp 6 minutes old.
	staleTimestamp bool
}

func TestVendorWebhooksEndToEnd(t *testing.T) {
	ctx := context.Background()
	clock := &vendorClock{}
	t0 := time.Now().UTC().Truncate(time.Second).Add(-2 * time.Hour)
	clock.Set(t0)

	onfidoAPI := &vendorOnfidoAPI{runStatus: map[string]map[string]any{
		// What GET /workflow_runs/{id} answers when the first Onfido event asks (Fetch).
		vOnfidoRunID: {"id": vOnfidoRunID, "applicant_id": vOnfidoApplic, "workflow_id": vOnfidoFlow,
			"status": "review", "reasons": []string{"document_consider"},
			"output":     map[string]any{"first_name": "Jane", "last_name": "Doe"},
			"updated_at": t0.Add(time.Minute).Format(time.RFC3339)},
	}}
	srv := httptest.NewServer(onfidoAPI)
	t.Cleanup(srv.Close)

	ps := []providers.Provider{
		onfido.New(onfido.Config{
			BaseURL: srv.URL, APIToken: vOnfidoToken, WorkflowID: vOnfidoFlow,
			WebhookSecrets: providers.Secrets{[]byte(vOnfidoSecret)},
			Timeout:        2 * time.Second, Retries: -1, HTTPClient: srv.Client(),
		}),
		persona.New(persona.Config{WebhookSecrets: providers.Secrets{[]byte(vPersonaSecret)}}),
		sumsub.New(sumsub.Config{WebhookSecrets: providers.Secrets{[]byte(vSumsubSecret)}}),
		veriff.New(veriff.Config{
			APIKey: vVeriffAPIKey, SharedSecret: vVeriffSecret,
			WebhookSecrets: providers.Secrets{[]byte(vVeriffSecret)},
		}),
	}

	st := openStore(t)
	sealer := newVault(t, st)
	// Every refusal audited, so that each refused delivery's event can be checked.
	svc := verification.New(verification.Config{CallbackBase: "http://verdict.test", Now: clock.Now, RejectedAuditEvery: -1},
		st, ps, nil, sealer)

	cases := []*vendorCase{
		{
			provider: "onfido", user: "usr-onfido-7c41e9", viaAPI: true,
			secret: vOnfidoSecret, sign: signOnfido, sigHeaders: []string{onfido.SignatureHeader},
			// workflow_run.completed whose status the adapter cannot map to an outcome: the
			// service asks Status (GET /workflow_runs/{id} on the fake API): review.
			first: func(ref string) vendorDelivery {
				return vendorDelivery{onfidoRunCompleted(ref, "usr-onfido-7c41e9", "processing", `[]`, t0.Add(time.Minute)), t0.Add(time.Minute)}
			},
			firstWant: store.StatusPendingReview,
			final: func(ref string) vendorDelivery {
				return vendorDelivery{onfidoRunCompleted(ref, "usr-onfido-7c41e9", "approved", `[]`, t0.Add(10*time.Minute)), t0.Add(10 * time.Minute)}
			},
			earlier: func(ref string) vendorDelivery {
				return vendorDelivery{onfidoRunCompleted(ref, "usr-onfido-7c41e9", "error", `[]`, t0.Add(5*time.Minute)), t0.Add(5 * time.Minute)}
			},
			placeholder: func(ref, user string) vendorDelivery {
				return vendorDelivery{onfidoRunCompleted(ref, user, "declined", `["face_mismatch"]`, t0.Add(20*time.Minute)), t0.Add(20 * time.Minute)}
			},
			placeholderRef:  "0d5b3c2e-93a1-4b7f-8f0e-6a2c9d1e4b70",
			placeholderWant: store.StatusRejected,
		},
		{
			provider: "persona", user: "usr-persona-2b8d0f", ref: "inq_2CVZ4HyVg7qaboXz2PUHknAn",
			secret: vPersonaSecret, sign: signPersona, sigHeaders: []string{persona.SignatureHeader},
			first: func(ref string) vendorDelivery {
				return vendorDelivery{personaEvent("evt_completed_1", "inquiry.completed", ref, "completed", "usr-persona-2b8d0f", t0.Add(time.Minute)), t0.Add(time.Minute)}
			},
			firstWant: store.StatusSubmitted,
			final: func(ref string) vendorDelivery {
				return vendorDelivery{personaEvent("evt_approved_1", "inquiry.approved", ref, "approved", "usr-persona-2b8d0f", t0.Add(10*time.Minute)), t0.Add(10 * time.Minute)}
			},
			earlier: func(ref string) vendorDelivery {
				return vendorDelivery{personaEvent("evt_review_1", "inquiry.marked-for-review", ref, "needs_review", "usr-persona-2b8d0f", t0.Add(5*time.Minute)), t0.Add(5 * time.Minute)}
			},
			placeholder: func(ref, user string) vendorDelivery {
				return vendorDelivery{personaEvent("evt_ph_"+strconv.Itoa(len(user)), "inquiry.marked-for-review", ref, "needs_review", user, t0.Add(20*time.Minute)), t0.Add(20 * time.Minute)}
			},
			placeholderRef:  "inq_PlaceholderAbc123",
			placeholderWant: store.StatusPendingReview,
			staleTimestamp:  true,
		},
		{
			provider: "sumsub", user: "usr-sumsub-9e3a57", ref: "5cb56e8e0a975a35f333cb83",
			secret: vSumsubSecret, sign: signSumsub, sigHeaders: []string{sumsub.HeaderDigest},
			first: func(ref string) vendorDelivery {
				return vendorDelivery{sumsubEvent(ref, "usr-sumsub-9e3a57", "applicantPending", "pending", "", t0.Add(time.Minute)), t0.Add(time.Minute)}
			},
			firstWant: store.StatusSubmitted,
			final: func(ref string) vendorDelivery {
				return vendorDelivery{sumsubEvent(ref, "usr-sumsub-9e3a57", "applicantReviewed", "completed", `{"reviewAnswer": "GREEN"}`, t0.Add(10*time.Minute)), t0.Add(10 * time.Minute)}
			},
			earlier: func(ref string) vendorDelivery {
				return vendorDelivery{sumsubEvent(ref, "usr-sumsub-9e3a57", "applicantOnHold", "onHold", "", t0.Add(5*time.Minute)), t0.Add(5 * time.Minute)}
			},
			placeholder: func(ref, user string) vendorDelivery {
				return vendorDelivery{sumsubEvent(ref, user, "applicantReviewed", "completed",
					`{"moderationComment": "We do not accept screenshots", "clientComment": "Jane Roe, passport X1234567", "reviewAnswer": "RED", "rejectLabels": ["SCREENSHOTS"], "reviewRejectType": "RETRY"}`,
					t0.Add(20*time.Minute)), t0.Add(20 * time.Minute)}
			},
			placeholderRef:  "5cb744200a975a67ed1798a4",
			placeholderWant: store.StatusNeedsResubmission,
			extraRejects: func(c *vendorCase, final vendorDelivery, now time.Time) []vendorReject {
				h := c.sign(c.secret, final.body, now)
				h.Set(sumsub.HeaderDigestAlg, sumsub.AlgSHA512) // digest made with SHA-256
				return []vendorReject{{"digest algorithm mismatch", h, final.body, verification.WebhookBadSignature}}
			},
		},
		{
			provider: "veriff", user: "usr-veriff-4f6c10", ref: "12df6045-3846-3e45-946a-14fa6136d78b",
			secret: vVeriffSecret, sign: signVeriff, sigHeaders: []string{"X-HMAC-SIGNATURE"},
			// The event webhook carries no time: the adapter uses the receipt time.
			first: func(ref string) vendorDelivery {
				return vendorDelivery{veriffProgress(ref, "usr-veriff-4f6c10", "submitted", 7002), t0.Add(time.Minute)}
			},
			firstWant: store.StatusSubmitted,
			final: func(ref string) vendorDelivery {
				return vendorDelivery{veriffDecision(ref, "usr-veriff-4f6c10", "approved", 9001, t0.Add(10*time.Minute)), t0.Add(10 * time.Minute)}
			},
			earlier: func(ref string) vendorDelivery {
				return vendorDelivery{veriffDecision(ref, "usr-veriff-4f6c10", "review", 9121, t0.Add(5*time.Minute)), t0.Add(5 * time.Minute)}
			},
			// A late "started" event, stamped with its (later) receipt time, must not leave approved.
			afterFinal: func(ref string) vendorDelivery {
				return vendorDelivery{veriffProgress(ref, "usr-veriff-4f6c10", "started", 7001), t0.Add(15 * time.Minute)}
			},
			placeholder: func(ref, user string) vendorDelivery {
				return vendorDelivery{veriffDecision(ref, user, "declined", 9102, t0.Add(20*time.Minute)), t0.Add(20 * time.Minute)}
			},
			placeholderRef:  "5a2358e7-fd31-4fcb-a23f-4d76651ba68a",
			placeholderWant: store.StatusRejected,
			extraRejects: func(c *vendorCase, final vendorDelivery, now time.Time) []vendorReject {
				h := c.sign(c.secret, final.body, now)
				h.Set("X-AUTH-CLIENT", "another-integration")
				return []vendorReject{{"wrong X-AUTH-CLIENT", h, final.body, verification.WebhookBadSignature}}
			},
		},
	}

	var rawUsers []string
	for _, vc := range cases {
		t.Run(vc.provider, func(t *testing.T) {
			rawUsers = append(rawUsers, vc.user, "usr-"+vc.provider+"-placeholder-5d2e")
			runVendorCase(ctx, t, svc, st, clock, vc)
		})
	}
	if onfidoAPI.gets == 0 {
		t.Error("the Onfido fetch event never asked GET /workflow_runs/{id}")
	}

	// The audit chain verifies and holds no raw user id (only SubjectRef hashes).
	seq, _, err := store.VerifyChain(ctx, st)
	if err != nil {
		t.Fatalf("VerifyChain: %v", err)
	}
	evs, err := st.AuditEvents(ctx, 0, int(seq)+10)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(evs)) != seq || seq == 0 {
		t.Fatalf("read %d audit events, head at %d", len(evs), seq)
	}
	refs := map[string]bool{}
	for _, ev := range evs {
		canon := store.CanonicalEvent(ev)
		whole, _ := json.Marshal(ev)
		for _, u := range rawUsers {
			if bytes.Contains(canon, []byte(u)) || bytes.Contains(whole, []byte(u)) {
				t.Errorf("audit event %d (%s) contains raw user id %q: %s", ev.Seq, ev.Type, u, canon)
			}
		}
		refs[ev.SubjectRef] = true
	}
	for _, u := range rawUsers {
		if !refs[store.SubjectRef(u)] {
			t.Errorf("no audit event refers to user %q by its SubjectRef", u)
		}
	}
}

func runVendorCase(ctx context.Context, t *testing.T, svc *verification.Service, st *sqlite.Store, clock *vendorClock, vc *vendorCase) {
	// arrive sets the clock to just after the vendor's event time.
	arrive := func(d vendorDelivery) time.Time {
		now := d.at.Add(2 * time.Second)
		clock.Set(now)
		return now
	}
	deliver := func(h http.Header, body []byte) (verification.WebhookResult, error) {
		return svc.HandleWebhook(ctx, vc.provider, h, body, "corr-"+vc.provider)
	}
	head := func() int64 {
		t.Helper()
		seq, _, err := st.AuditHead(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}

	// 1. The session exists.
	clock.Set(vc.first(vc.ref).at.Add(-5 * time.Minute))
	var v store.Verification
	if vc.viaAPI {
		c, err := svc.Create(ctx, verification.CreateRequest{UserID: vc.user, Provider: vc.provider, Actor: "test", CorrelationID: "corr-create"})
		if err != nil {
			t.Fatal(err)
		}
		v, vc.ref = c.Verification, c.Verification.ProviderRef
		if vc.ref == "" || c.ClientToken == "" {
			t.Fatalf("created via the vendor API: %+v", c)
		}
	} else {
		var err error
		v, _, err = st.CreateVerification(ctx, store.NewVerification{
			Verification: store.Verification{
				ID: "ver_" + vc.provider + "_e2e", UserID: vc.user, Provider: vc.provider, ProviderRef: vc.ref,
				Status: store.StatusCapturing, ReasonCodes: []string{}, RetentionPolicy: "kyc-default",
				ExpiresAt: clock.Now().Add(72 * time.Hour),
			},
			Actor: "test", CorrelationID: "corr-create",
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if v.Status != store.StatusCapturing {
		t.Fatalf("new session status %s, want capturing", v.Status)
	}
	get := func() store.Verification {
		t.Helper()
		got, err := st.GetVerification(ctx, v.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	unchanged := func(t *testing.T, what string, before store.Verification) {
		t.Helper()
		after := get()
		if after.Status != before.Status || !after.LastEventAt.Equal(before.LastEventAt) ||
			!after.UpdatedAt.Equal(before.UpdatedAt) || !slices.Equal(after.ReasonCodes, before.ReasonCodes) {
			t.Errorf("%s changed the session:\nbefore %+v\nafter  %+v", what, before, after)
		}
	}
	// expectRejected checks a refused delivery: the reason, one webhook.rejected event, and
	// an untouched session.
	expectRejected := func(t *testing.T, name string, h http.Header, body []byte, reason string) {
		t.Helper()
		before, seq0 := get(), head()
		r, err := deliver(h, body)
		var we *verification.WebhookError
		if !errors.As(err, &we) || we.Reason != reason {
			t.Errorf("%s: result %+v err %v, want WebhookError %s", name, r, err, reason)
		}
		if r.Applied {
			t.Errorf("%s: applied", name)
		}
		seq := head()
		if seq != seq0+1 {
			t.Errorf("%s: audit head %d -> %d, want exactly one webhook.rejected event", name, seq0, seq)
		} else {
			evs, err := st.AuditEvents(ctx, seq0, 10)
			if err != nil {
				t.Fatal(err)
			}
			var p struct{ Provider, Reason string }
			if len(evs) != 1 || evs[0].Type != store.EventWebhookRejected || json.Unmarshal(evs[0].Payload, &p) != nil ||
				p.Provider != vc.provider || p.Reason != reason || evs[0].SubjectRef != "" {
				t.Errorf("%s: audit events after %d: %+v", name, seq0, evs)
			}
		}
		unchanged(t, name, before)
	}
	// expectNotApplied checks an authentic delivery that changes nothing.
	expectNotApplied := func(t *testing.T, name string, h http.Header, body []byte, reasons ...string) {
		t.Helper()
		before, seq0 := get(), head()
		r, err := deliver(h, body)
		if err != nil || r.Applied || !slices.Contains(reasons, r.Reason) || r.VerificationID != v.ID || r.Status != before.Status {
			t.Errorf("%s: %+v %v, want not applied with reason in %v", name, r, err, reasons)
		}
		if seq := head(); seq != seq0 {
			t.Errorf("%s: audit head %d -> %d, want unchanged", name, seq0, seq)
		}
		unchanged(t, name, before)
	}

	final := vc.final(vc.ref)

	// 3, 4. Refusals of the (final, most valuable) approval: nothing changes.
	t.Run("refusals", func(t *testing.T) {
		now := arrive(final)
		good := vc.sign(vc.secret, final.body, now)
		changed := bytes.Clone(final.body)
		changed[len(changed)/2] ^= 0x01
		missing := good.Clone()
		for _, k := range vc.sigHeaders {
			missing.Del(k)
		}
		rejects := []vendorReject{
			{"wrong secret", vc.sign(vWrongSecret, final.body, now), final.body, verification.WebhookBadSignature},
			{"one changed body byte", good, changed, verification.WebhookBadSignature},
			{"missing signature header", missing, final.body, verification.WebhookMissingSignature},
			{"no headers at all", http.Header{}, final.body, verification.WebhookMissingSignature},
		}
		if vc.extraRejects != nil {
			rejects = append(rejects, vc.extraRejects(vc, final, now)...)
		}
		if vc.staleTimestamp {
			// 8. A signature 6 minutes old (valid HMAC, outside the 5 min tolerance).
			rejects = append(rejects, vendorReject{"timestamp 6 minutes old", vc.sign(vc.secret, final.body, now.Add(-6*time.Minute)),
				final.body, verification.WebhookStaleTimestamp})
		}
		for _, rj := range rejects {
			expectRejected(t, rj.name, rj.h, rj.body, rj.reason)
		}
		if got := get(); got.Status != store.StatusCapturing {
			t.Fatalf("status after refusals: %s", got.Status)
		}
	})

	// 2, 5. A valid delivery is applied once; its replay is a duplicate.
	first := vc.first(vc.ref)
	now := arrive(first)
	h1 := vc.sign(vc.secret, first.body, now)
	seq0 := head()
	r, err := deliver(h1, first.body)
	if err != nil || !r.Applied || r.Reason != verification.WebhookApplied || r.VerificationID != v.ID || r.Status != vc.firstWant {
		t.Fatalf("first event: %+v %v, want applied -> %s", r, err, vc.firstWant)
	}
	if got := get(); got.Status != vc.firstWant || (got.LastEventAt.IsZero() && vc.provider != "veriff") {
		t.Fatalf("after the first event: %+v", got)
	}
	if seq := head(); seq != seq0+1 {
		t.Errorf("first event: audit head %d -> %d, want one status_changed event", seq0, seq)
	}
	clock.Set(now.Add(30 * time.Second)) // the vendor retries the same delivery
	expectNotApplied(t, "replayed delivery", h1, first.body, verification.WebhookDuplicate)

	// 5. Ten concurrent deliveries of the approval: exactly one applied.
	now = arrive(final)
	hf := vc.sign(vc.secret, final.body, now)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		applied int
	)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := deliver(hf, final.body)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Errorf("concurrent approval: %v", err)
			case r.Applied:
				applied++
			case r.Reason != verification.WebhookDuplicate || r.Status != store.StatusApproved:
				t.Errorf("concurrent approval redelivery: %+v", r)
			}
		}()
	}
	wg.Wait()
	if applied != 1 {
		t.Fatalf("approval applied %d times, want 1", applied)
	}
	if got := get(); got.Status != store.StatusApproved || !got.LastEventAt.Equal(final.at) {
		t.Fatalf("after the approval: status %s last event %v, want approved at %v", got.Status, got.LastEventAt, final.at)
	}

	// 6. An earlier, non-final event delivered late is not applied.
	earlier := vc.earlier(vc.ref)
	now = final.at.Add(time.Minute) // arrives after the approval
	clock.Set(now)
	expectNotApplied(t, "earlier event delivered late", vc.sign(vc.secret, earlier.body, now), earlier.body,
		verification.WebhookStale, verification.WebhookNotApplicable)
	if vc.afterFinal != nil {
		late := vc.afterFinal(vc.ref)
		now = arrive(late)
		expectNotApplied(t, "newer event after the final one", vc.sign(vc.secret, late.body, now), late.body,
			verification.WebhookNotApplicable)
	}
	if got := get(); got.Status != store.StatusApproved {
		t.Fatalf("final status %s, want approved", got.Status)
	}

	// 7. An event for an unknown reference: refused without a user, a placeholder session
	// for the user it names otherwise (one, even with concurrent deliveries).
	t.Run("placeholder", func(t *testing.T) {
		pd := vc.placeholder(vc.placeholderRef, "")
		now := arrive(pd)
		seq0 := head()
		_, err := deliver(vc.sign(vc.secret, pd.body, now), pd.body)
		var we *verification.WebhookError
		if !errors.As(err, &we) || we.Reason != verification.WebhookUnknownSession {
			t.Errorf("unknown reference without a user: %v, want %s", err, verification.WebhookUnknownSession)
		}
		if seq := head(); seq != seq0 {
			t.Errorf("unknown session: audit head %d -> %d", seq0, seq)
		}
		if _, err := st.VerificationByProviderRef(ctx, vc.provider, vc.placeholderRef); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a session was created without a user: %v", err)
		}

		user := "usr-" + vc.provider + "-placeholder-5d2e"
		pd = vc.placeholder(vc.placeholderRef, user)
		now = arrive(pd)
		hp := vc.sign(vc.secret, pd.body, now)
		var wg sync.WaitGroup
		var n atomic.Int32
		for range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := deliver(hp, pd.body)
				if err != nil {
					t.Errorf("placeholder delivery: %v", err)
					return
				}
				if r.Applied {
					n.Add(1)
				} else if r.Reason != verification.WebhookDuplicate {
					t.Errorf("placeholder redelivery: %+v", r)
				}
			}()
		}
		wg.Wait()
		if n.Load() != 1 {
			t.Errorf("placeholder event applied %d times, want 1", n.Load())
		}
		vs, err := st.ListVerifications(ctx, user, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) != 1 || vs[0].Provider != vc.provider || vs[0].ProviderRef != vc.placeholderRef ||
			vs[0].Status != vc.placeholderWant || vs[0].UserID != user || !vs[0].LastEventAt.Equal(pd.at) {
			t.Fatalf("placeholder sessions for %s: %s", user, fmtVerifications(vs))
		}
		// The session's own user still has exactly the one session.
		if vs, err := st.ListVerifications(ctx, vc.user, 10); err != nil || len(vs) != 1 || vs[0].ID != v.ID {
			t.Errorf("sessions of %s: %s %v", vc.user, fmtVerifications(vs), err)
		}
	})
}

func fmtVerifications(vs []store.Verification) string {
	var b strings.Builder
	for _, v := range vs {
		fmt.Fprintf(&b, "{%s user=%s %s/%s %s last=%v} ", v.ID, v.UserID, v.Provider, v.ProviderRef, v.Status, v.LastEventAt)
	}
	return "[" + b.String() + "]"
}

// TestVendorVeriffDecisionAfterDelayedProgressEvent: Veriff's event webhooks (started,
// submitted) carry no time, so the adapter stamps them with the receipt time, while a
// decision carries Veriff's decisionTime. A submitted event whose delivery was retried (or
// merely received by a server whose clock runs ahead of Veriff's) is then "newer" than the
// decision that followed it, and the decision — the session's outcome — is dropped as stale
// and acknowledged, so Veriff never resends it.
func TestVendorVeriffDecisionAfterDelayedProgressEvent(t *testing.T) {
	ctx := context.Background()
	clock := &vendorClock{}
	t0 := time.Now().UTC().Truncate(time.Second).Add(-2 * time.Hour)
	st := openStore(t)
	sealer := newVault(t, st)
	p := veriff.New(veriff.Config{APIKey: vVeriffAPIKey, SharedSecret: vVeriffSecret, WebhookSecrets: providers.Secrets{[]byte(vVeriffSecret)}})
	svc := verification.New(verification.Config{Now: clock.Now}, st, []providers.Provider{p}, nil, sealer)
	const ref, user = "7a1f3c22-5b0e-4d8a-9c61-0e2f4b6d8a10", "usr-veriff-delay-1"
	clock.Set(t0)
	v, _, err := st.CreateVerification(ctx, store.NewVerification{
		Verification: store.Verification{ID: "ver_veriff_delay", UserID: user, Provider: "veriff", ProviderRef: ref,
			Status: store.StatusCapturing, ReasonCodes: []string{}, ExpiresAt: t0.Add(72 * time.Hour)},
		Actor: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	// The person submits at t0+1m; Veriff approves at t0+2m. Our endpoint was down, and
	// Veriff's retries arrive at t0+30m (submitted) and t0+31m (the decision).
	submitted := veriffProgress(ref, user, "submitted", 7002)
	clock.Set(t0.Add(30 * time.Minute))
	if r, err := svc.HandleWebhook(ctx, "veriff", signVeriff(vVeriffSecret, submitted, clock.Now()), submitted, ""); err != nil || !r.Applied {
		t.Fatalf("submitted: %+v %v", r, err)
	}
	decision := veriffDecision(ref, user, "approved", 9001, t0.Add(2*time.Minute))
	clock.Set(t0.Add(31 * time.Minute))
	r, err := svc.HandleWebhook(ctx, "veriff", signVeriff(vVeriffSecret, decision, clock.Now()), decision, "")
	got, _ := st.GetVerification(ctx, v.ID)
	if err != nil || !r.Applied || got.Status != store.StatusApproved {
		t.Fatalf("veriff decision after a delayed progress event not applied: %q (status %s), err=%v; "+
			"a time-less event must not advance the session's last event time", r.Reason, got.Status, err)
	}
}

// TestVendorPersonaEventWithoutInquiryIsAcknowledged: Persona signs events about accounts,
// cases and reports too; they name no inquiry, so they are acknowledged as ignored, not
// refused as malformed (which would make Persona retry them).
func TestVendorPersonaEventWithoutInquiryIsAcknowledged(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	p := persona.New(persona.Config{WebhookSecrets: providers.Secrets{[]byte(vPersonaSecret)}})
	svc := verification.New(verification.Config{}, st, []providers.Provider{p}, nil, newVault(t, st))
	now := time.Now().UTC()
	body := []byte(`{"data":{"type":"event","id":"evt_acc1","attributes":{"name":"account.created","created-at":"` +
		now.Format("2006-01-02T15:04:05.000Z") + `","payload":{"data":{"type":"account","id":"act_123",` +
		`"attributes":{"reference-id":"user-p1"}}}}}}`)
	r, err := svc.HandleWebhook(ctx, "persona", signPersona(vPersonaSecret, body, now), body, "")
	if err != nil || r.Applied || r.Reason != verification.WebhookIgnored {
		t.Fatalf("account.created: %+v, %v; want it acknowledged as ignored", r, err)
	}
	// A forged one is still refused.
	if _, err := svc.HandleWebhook(ctx, "persona", signPersona("not-the-secret", body, now), body, ""); err == nil {
		t.Fatal("a forged account.created was acknowledged")
	}
	if vs, err := st.ListVerifications(ctx, "user-p1", 10); err != nil || len(vs) != 0 {
		t.Fatalf("sessions after an ignored event: %v, %v", vs, err)
	}
}
