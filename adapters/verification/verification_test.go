package verification_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/verdict-engine/verdict/adapters/providers"
	"github.com/verdict-engine/verdict/adapters/vault"
	"github.com/verdict-engine/verdict/adapters/verification"
	"github.com/verdict-engine/verdict/store"
	"github.com/verdict-engine/verdict/store/sqlite"
)

// fakeProvider signs with hex HMAC-SHA256 in X-Sig; its body is the Event as JSON.
type fakeProvider struct {
	secret []byte
	ref    string // when set, Start answers with this reference
	mu     sync.Mutex
	starts int
	status providers.Update
}

func (p *fakeProvider) Name() string { return "fake" }
func (p *fakeProvider) Start(_ context.Context, r providers.StartRequest) (providers.Session, error) {
	p.mu.Lock()
	p.starts++
	ref := p.ref
	p.mu.Unlock()
	if ref == "" {
		ref = "ref-" + r.VerificationID
	}
	return providers.Session{ProviderRef: ref, ClientToken: "tok"}, nil
}
func (p *fakeProvider) Status(context.Context, string) (providers.Update, error) {
	return p.status, nil
}
func (p *fakeProvider) Cancel(context.Context, string) error { return nil }
func (p *fakeProvider) VerifyWebhook(h providers.Header, body []byte, _ time.Time) (providers.Event, error) {
	sig := h.Get("X-Sig")
	if sig == "" {
		return providers.Event{}, providers.ErrMissingSignature
	}
	if !providers.MatchHexHMAC(providers.SHA256, providers.Secrets{p.secret}, body, sig) {
		return providers.Event{}, providers.ErrBadSignature
	}
	var ev providers.Event
	if err := json.Unmarshal(body, &ev); err != nil {
		return providers.Event{}, providers.ErrMalformedPayload
	}
	return ev, nil
}

func (p *fakeProvider) deliver(ev providers.Event) (http.Header, []byte) {
	b, _ := json.Marshal(ev)
	h := http.Header{}
	h.Set("X-Sig", providers.HexHMAC(providers.SHA256, p.secret, b))
	return h, b
}

// newVault returns a vault over st under a fresh random master key.
func newVault(t *testing.T, st store.SubjectKeys) *vault.Vault {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	ring, err := vault.NewRing("1", key)
	if err != nil {
		t.Fatal(err)
	}
	return vault.New(ring, st)
}

func newService(t *testing.T) (*verification.Service, *fakeProvider, *sqlite.Store) {
	return newServiceWith(t, verification.Config{CallbackBase: "http://verdict.test"})
}

// openStore opens a fresh embedded store, closed when the test ends.
func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// newServiceWith returns a service configured by cfg over a fresh embedded store, with the
// fake provider.
func newServiceWith(t *testing.T, cfg verification.Config) (*verification.Service, *fakeProvider, *sqlite.Store) {
	t.Helper()
	st := openStore(t)
	sealer := newVault(t, st)
	p := &fakeProvider{secret: []byte("webhook-secret-for-tests")}
	return verification.New(cfg, st, []providers.Provider{p}, nil, sealer), p, st
}

func TestWebhookOrderingAndIdempotency(t *testing.T) {
	ctx := context.Background()
	svc, p, st := newService(t)
	c, err := svc.Create(ctx, verification.CreateRequest{UserID: "u1", Provider: "fake", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ref := c.Verification.ProviderRef
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

	apply := func(ev providers.Event) (verification.WebhookResult, error) {
		h, b := p.deliver(ev)
		return svc.HandleWebhook(ctx, "fake", h, b, "corr")
	}
	// Submitted at t0+1m, then the approval at t0+5m is delivered 10 times concurrently.
	if r, err := apply(providers.Event{ID: "e1", ProviderRef: ref, Status: store.StatusSubmitted, OccurredAt: t0.Add(time.Minute)}); err != nil || !r.Applied {
		t.Fatalf("submitted: %+v %v", r, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	applied := 0
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := apply(providers.Event{ID: "e3", ProviderRef: ref, Status: store.StatusApproved, ReasonCodes: []string{"OK", "bad code"}, OccurredAt: t0.Add(5 * time.Minute)})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			if r.Applied {
				applied++
			} else if r.Reason != verification.WebhookDuplicate {
				t.Errorf("redelivery: %+v", r)
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if applied != 1 {
		t.Fatalf("approval applied %d times, want 1", applied)
	}
	// An older event (pending_review at t0+3m) arriving late does not move it back.
	r, err := apply(providers.Event{ID: "e2", ProviderRef: ref, Status: store.StatusPendingReview, OccurredAt: t0.Add(3 * time.Minute)})
	if err != nil || r.Applied || r.Reason != verification.WebhookStale {
		t.Fatalf("late older event: %+v %v", r, err)
	}
	v, err := st.GetVerification(ctx, c.Verification.ID)
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != store.StatusApproved || len(v.ReasonCodes) != 1 || v.ReasonCodes[0] != "OK" {
		t.Fatalf("session after webhooks: %+v", v)
	}
	// A newer event that would leave a final state is not applied either.
	r, err = apply(providers.Event{ID: "e4", ProviderRef: ref, Status: store.StatusCapturing, OccurredAt: t0.Add(9 * time.Minute)})
	if err != nil || r.Applied || r.Reason != verification.WebhookNotApplicable {
		t.Fatalf("event after final: %+v %v", r, err)
	}
	// Nor one that repeats the final status with another score and reasons: the result
	// that decisions read stays, and so does its age.
	score := 3.0
	r, err = apply(providers.Event{ID: "e5", ProviderRef: ref, Status: store.StatusApproved, Score: &score,
		ReasonCodes: []string{"FRAUD_SUSPECTED"}, OccurredAt: t0.Add(10 * time.Minute)})
	if err != nil || r.Applied || r.Reason != verification.WebhookNotApplicable {
		t.Fatalf("same final status, another result: %+v %v", r, err)
	}
	after, err := st.GetVerification(ctx, c.Verification.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.Score != v.Score || !slices.Equal(after.ReasonCodes, v.ReasonCodes) || !after.UpdatedAt.Equal(v.UpdatedAt) || !after.LastEventAt.Equal(v.LastEventAt) {
		t.Fatalf("final session changed: %+v, was %+v", after, v)
	}
}

func TestWebhookRefusalsChangeNothing(t *testing.T) {
	ctx := context.Background()
	svc, p, st := newService(t)
	c, err := svc.Create(ctx, verification.CreateRequest{UserID: "u2", Provider: "fake", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	seq0, _, _ := st.AuditHead(ctx)
	h, b := p.deliver(providers.Event{ID: "x", ProviderRef: c.Verification.ProviderRef, Status: store.StatusApproved})
	tampered := bytes.Replace(b, []byte("approved"), []byte("approvee"), 1)
	cases := []struct {
		name, provider, reason string
		h                      http.Header
		body                   []byte
	}{
		{"unknown provider", "nope", verification.WebhookUnknownProvider, h, b},
		{"missing signature", "fake", verification.WebhookMissingSignature, http.Header{}, b},
		{"changed byte", "fake", verification.WebhookBadSignature, h, tampered},
	}
	for i, tc := range cases {
		_, err := svc.HandleWebhook(ctx, tc.provider, tc.h, tc.body, "corr")
		var we *verification.WebhookError
		if !errors.As(err, &we) || we.Reason != tc.reason {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.reason)
		}
		seq, _, _ := st.AuditHead(ctx)
		if seq != seq0+int64(i)+1 {
			t.Errorf("%s: audit head %d, want one webhook.rejected event", tc.name, seq)
		}
	}
	v, _ := st.GetVerification(ctx, c.Verification.ID)
	if v.Status != store.StatusCapturing {
		t.Fatalf("status changed to %s", v.Status)
	}
}

func TestWebhookPlaceholderForUnknownRef(t *testing.T) {
	ctx := context.Background()
	svc, p, st := newService(t)
	// No user: refused so the vendor retries.
	h, b := p.deliver(providers.Event{ID: "a", ProviderRef: "vendor-1", Status: store.StatusApproved})
	if _, err := svc.HandleWebhook(ctx, "fake", h, b, ""); err == nil {
		t.Fatal("unknown ref without user accepted")
	}
	// With the user: one placeholder, even with concurrent deliveries.
	h, b = p.deliver(providers.Event{ID: "b", ProviderRef: "vendor-1", UserID: "u3", Status: store.StatusPendingReview})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := svc.HandleWebhook(ctx, "fake", h, b, ""); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	vs, err := st.ListVerifications(ctx, "u3", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1 || vs[0].Status != store.StatusPendingReview || vs[0].ProviderRef != "vendor-1" {
		t.Fatalf("placeholders: %+v", vs)
	}
}

func TestFetchEventAsksStatus(t *testing.T) {
	ctx := context.Background()
	svc, p, st := newService(t)
	c, _ := svc.Create(ctx, verification.CreateRequest{UserID: "u4", Provider: "fake", Actor: "test"})
	p.status = providers.Update{Status: store.StatusRejected, ReasonCodes: []string{"DOCUMENT_EXPIRED"}}
	h, b := p.deliver(providers.Event{ID: "f", ProviderRef: c.Verification.ProviderRef, Fetch: true})
	if r, err := svc.HandleWebhook(ctx, "fake", h, b, ""); err != nil || !r.Applied {
		t.Fatalf("%+v %v", r, err)
	}
	v, _ := st.GetVerification(ctx, c.Verification.ID)
	if v.Status != store.StatusRejected || v.ReasonCodes[0] != "DOCUMENT_EXPIRED" {
		t.Fatalf("%+v", v)
	}
}

func TestCreateIdempotentAndConsentChecked(t *testing.T) {
	ctx := context.Background()
	svc, p, _ := newService(t)
	req := verification.CreateRequest{UserID: "u5", Provider: "fake", IdempotencyKey: "k1", RequestHash: "h1", Actor: "t"}
	a, err := svc.Create(ctx, req)
	if err != nil || !a.Created || a.ClientToken == "" {
		t.Fatalf("%+v %v", a, err)
	}
	b, err := svc.Create(ctx, req)
	if err != nil || b.Created || b.Verification.ID != a.Verification.ID {
		t.Fatalf("replay: %+v %v", b, err)
	}
	if p.starts != 1 {
		t.Fatalf("provider started %d times", p.starts)
	}
	req.RequestHash = "h2"
	if _, err := svc.Create(ctx, req); !errors.Is(err, store.ErrDuplicateIdempotencyKey) {
		t.Fatalf("reused key: %v", err)
	}
	if _, err := svc.Create(ctx, verification.CreateRequest{UserID: "u6", Provider: "other"}); !errors.Is(err, verification.ErrUnknownProvider) {
		t.Fatalf("unknown provider: %v", err)
	}
	bad := &store.Consent{PolicyHash: "x", Locale: "en", Scope: []string{"identity_verification"}}
	var ie *verification.InvalidError
	if _, err := svc.Create(ctx, verification.CreateRequest{UserID: "u7", Provider: "fake", Consent: bad}); !errors.As(err, &ie) {
		t.Fatalf("bad consent: %v", err)
	}
}

func TestCancel(t *testing.T) {
	ctx := context.Background()
	svc, _, st := newService(t)
	c, err := svc.Create(ctx, verification.CreateRequest{UserID: "u8", Provider: "fake", Actor: "t"})
	if err != nil {
		t.Fatal(err)
	}
	v, err := svc.Cancel(ctx, c.Verification.ID, "t", "corr")
	if err != nil || v.Status != store.StatusExpired || v.ReasonCodes[0] != "VERIFICATION_CANCELLED" {
		t.Fatalf("%+v %v", v, err)
	}
	// Refused as a change to an ended session, saying so: not "not collecting evidence".
	const ended = "the session has ended (status expired): "
	if _, err := svc.Cancel(ctx, c.Verification.ID, "t", "corr"); !errors.Is(err, verification.ErrNotCapturing) || err.Error() != ended+"there is nothing to cancel" {
		t.Fatalf("cancel twice: %v", err)
	}
	if _, err := svc.RecordConsent(ctx, c.Verification.ID, store.Consent{PolicyHash: "sha256:4f2a9c01", Locale: "en-GB", Scope: []string{"identity_verification"}}, "t", "corr"); !errors.Is(err, verification.ErrNotCapturing) || err.Error() != ended+"it takes no consent" {
		t.Fatalf("consent on an ended session: %v", err)
	}
	if _, err := svc.Cancel(ctx, "ver_missing", "t", "corr"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cancel unknown: %v", err)
	}
	got, _ := st.GetVerification(ctx, c.Verification.ID)
	if got.Status != store.StatusExpired {
		t.Fatal(got.Status)
	}
}

// A webhook that arrives before Create has recorded the provider's reference makes a
// placeholder; Create then answers with that session and expires its own.
func TestCreateAfterPlaceholder(t *testing.T) {
	ctx := context.Background()
	svc, p, st := newService(t)
	p.ref = "vendor-early"
	h, b := p.deliver(providers.Event{ID: "early", ProviderRef: "vendor-early", UserID: "u9", Status: store.StatusSubmitted})
	if r, err := svc.HandleWebhook(ctx, "fake", h, b, ""); err != nil || !r.Applied {
		t.Fatalf("early webhook: %+v %v", r, err)
	}
	c, err := svc.Create(ctx, verification.CreateRequest{UserID: "u9", Provider: "fake", Actor: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Verification.ProviderRef != "vendor-early" || c.Verification.Status != store.StatusSubmitted {
		t.Fatalf("create answered %+v, want the placeholder", c.Verification)
	}
	vs, _ := st.ListVerifications(ctx, "u9", 10)
	statuses := map[string]int{}
	for _, v := range vs {
		statuses[v.Status]++
	}
	if len(vs) != 2 || statuses[store.StatusExpired] != 1 || statuses[store.StatusSubmitted] != 1 {
		t.Fatalf("sessions of u9: %v", statuses)
	}
	// Another user's create with the same reference is refused, not merged.
	if _, err := svc.Create(ctx, verification.CreateRequest{UserID: "u10", Provider: "fake", Actor: "t"}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("another user's create on a taken reference: %v", err)
	}
}

// TestForgedWebhookFloodIsAuditedOncePerInterval sends a flood of forged deliveries: the
// audit log, which keeps everything forever, gets one event per provider and reason per
// minute, the next one counting those in between; every refusal is still answered and
// counted in the metrics.
func TestForgedWebhookFloodIsAuditedOncePerInterval(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	p := &fakeProvider{secret: []byte("webhook-secret-for-tests")}
	now := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	observed := map[string]int{}
	svc := verification.New(verification.Config{
		Now:            func() time.Time { return now },
		ObserveWebhook: func(provider, result string) { observed[provider+" "+result]++ },
	}, st, []providers.Provider{p}, nil, newVault(t, st))

	h, b := p.deliver(providers.Event{ID: "x", ProviderRef: "ref", Status: store.StatusApproved})
	forged := bytes.Replace(b, []byte("approved"), []byte("approvee"), 1)
	refuse := func(n int, h http.Header, body []byte, reason string) {
		t.Helper()
		for range n {
			_, err := svc.HandleWebhook(ctx, "fake", h, body, "corr")
			var we *verification.WebhookError
			if !errors.As(err, &we) || we.Reason != reason {
				t.Fatalf("forged delivery: %v, want %s", err, reason)
			}
			now = now.Add(100 * time.Millisecond)
		}
	}
	refuse(300, h, forged, verification.WebhookBadSignature)          // 30 s
	refuse(5, http.Header{}, b, verification.WebhookMissingSignature) // its own kind
	now = now.Add(time.Minute)                                        // a minute later
	refuse(1, h, forged, verification.WebhookBadSignature)

	evs, err := st.AuditEvents(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	type payload struct {
		Provider, Reason string
		Suppressed       int64
	}
	var got []payload
	for _, ev := range evs {
		if ev.Type != store.EventWebhookRejected {
			t.Fatalf("unexpected audit event %s", ev.Type)
		}
		var p payload
		if err := json.Unmarshal(ev.Payload, &p); err != nil {
			t.Fatal(err)
		}
		got = append(got, p)
	}
	want := []payload{
		{"fake", verification.WebhookBadSignature, 0},
		{"fake", verification.WebhookMissingSignature, 0},
		{"fake", verification.WebhookBadSignature, 299}, // the 299 after the first
	}
	if !slices.Equal(got, want) {
		t.Fatalf("audit events for 306 refusals = %+v, want %+v", got, want)
	}
	if observed["fake "+verification.WebhookBadSignature] != 301 || observed["fake "+verification.WebhookMissingSignature] != 5 {
		t.Errorf("observed refusals = %v, want every one", observed)
	}
	if _, _, err := store.VerifyChain(ctx, st); err != nil {
		t.Errorf("audit chain: %v", err)
	}
}

// failingAudit is a store whose audit appends fail while down is set.
type failingAudit struct {
	*sqlite.Store
	down    bool
	appends int
}

func (f *failingAudit) AppendAudit(ctx context.Context, ev store.AuditEvent) error {
	f.appends++
	if f.down {
		return fmt.Errorf("append: %w", store.ErrUnavailable)
	}
	return f.Store.AppendAudit(ctx, ev)
}

// TestRejectedWebhookAuditSurvivesAStoreOutage: refusals whose event could not be written
// are counted in the next one, and the store is not asked again until the interval is over.
func TestRejectedWebhookAuditSurvivesAStoreOutage(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	fa := &failingAudit{Store: st, down: true}
	now := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	svc := verification.New(verification.Config{Now: func() time.Time { return now }},
		fa, []providers.Provider{&fakeProvider{secret: []byte("s")}}, nil, newVault(t, st))
	for range 10 {
		_, _ = svc.HandleWebhook(ctx, "fake", http.Header{}, []byte(`{}`), "corr")
	}
	if fa.appends != 1 {
		t.Fatalf("%d audit appends for 10 refusals with the store down, want 1", fa.appends)
	}
	fa.down = false
	now = now.Add(time.Minute)
	_, _ = svc.HandleWebhook(ctx, "fake", http.Header{}, []byte(`{}`), "corr")
	evs, err := st.AuditEvents(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var p struct{ Suppressed int64 }
	if len(evs) != 1 || json.Unmarshal(evs[0].Payload, &p) != nil || p.Suppressed != 10 {
		t.Fatalf("audit events after the outage = %+v, want one counting the 10 before it", evs)
	}
}

// TestRetentionPolicyOfNewSessions: a session falls under the configured default retention
// policy (the retention file's default_policy), or another policy of the file its creator
// names; a name the file does not define is refused.
func TestRetentionPolicyOfNewSessions(t *testing.T) {
	ctx := context.Background()
	svc, _, _ := newServiceWith(t, verification.Config{RetentionPolicy: "kyc-eu", RetentionPolicies: []string{"kyc-eu", "kyc-us"}})
	for _, tc := range []struct{ ask, want string }{{"", "kyc-eu"}, {"kyc-us", "kyc-us"}, {"kyc-eu", "kyc-eu"}} {
		c, err := svc.Create(ctx, verification.CreateRequest{UserID: "u-" + tc.ask, Provider: "fake", Actor: "test", RetentionPolicy: tc.ask})
		if err != nil || c.Verification.RetentionPolicy != tc.want {
			t.Fatalf("asked %q: policy %q, %v; want %q", tc.ask, c.Verification.RetentionPolicy, err, tc.want)
		}
	}
	var ie *verification.InvalidError
	if _, err := svc.Create(ctx, verification.CreateRequest{UserID: "u-x", Provider: "fake", Actor: "test", RetentionPolicy: "kyc-default"}); !errors.As(err, &ie) || ie.Field != "/retention_policy" {
		t.Fatalf("a policy the file does not define: %v", err)
	}
}

// TestWebhookReasonsBelongToTheirStatus: reasons describe the result they came with. An
// approval without reasons after a review clears the review's reasons (policies would
// otherwise read an approved session with ID_EXPIRED); an event repeating the current
// status without reasons keeps them.
func TestWebhookReasonsBelongToTheirStatus(t *testing.T) {
	ctx := context.Background()
	svc, p, st := newService(t)
	c, err := svc.Create(ctx, verification.CreateRequest{UserID: "u1", Provider: "fake", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ref, t0 := c.Verification.ProviderRef, time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	step := func(id, status string, codes []string, at time.Duration, want []string) {
		t.Helper()
		h, b := p.deliver(providers.Event{ID: id, ProviderRef: ref, Status: status, ReasonCodes: codes, OccurredAt: t0.Add(at)})
		if r, err := svc.HandleWebhook(ctx, "fake", h, b, "corr"); err != nil || !r.Applied {
			t.Fatalf("%s: %+v %v", id, r, err)
		}
		v, err := st.GetVerification(ctx, c.Verification.ID)
		if err != nil {
			t.Fatal(err)
		}
		if v.Status != status || !slices.Equal(v.ReasonCodes, want) {
			t.Fatalf("after %s: status %s reasons %q, want %s %q", id, v.Status, v.ReasonCodes, status, want)
		}
	}
	step("e1", store.StatusNeedsResubmission, []string{"DOCUMENT_IMAGE_QUALITY"}, time.Minute, []string{"DOCUMENT_IMAGE_QUALITY"})
	step("e2", store.StatusSubmitted, nil, 2*time.Minute, []string{})
	step("e3", store.StatusPendingReview, []string{"ID_EXPIRED"}, 3*time.Minute, []string{"ID_EXPIRED"})
	step("e4", store.StatusPendingReview, nil, 4*time.Minute, []string{"ID_EXPIRED"})
	step("e5", store.StatusApproved, nil, 5*time.Minute, []string{})
}
