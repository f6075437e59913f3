// Package persona is the providers.Provider for Persona (withpersona.com): it creates
// inquiries through Persona's JSON:API, reads their status, expires them, and verifies and
// maps Persona's signed webhooks onto canonical statuses. It sends Persona only our user id
// (as the inquiry's reference-id) and keeps no personal data from Persona's answers.
//
// Persona documentation this adapter follows:
//   - https://docs.withpersona.com/api-reference/inquiries/create-an-inquiry
//   - https://docs.withpersona.com/reference/retrieve-an-inquiry
//   - https://docs.withpersona.com/api-reference/inquiries/expire-an-inquiry
//   - https://docs.withpersona.com/reference/resume-an-inquiry
//   - https://docs.withpersona.com/idempotence, https://docs.withpersona.com/versioning,
//     https://docs.withpersona.com/api-key-inflection
//   - https://docs.withpersona.com/model-lifecycle (statuses and events)
//   - https://docs.withpersona.com/docs/webhooks-best-practices (signature, ordering)
package persona

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/verdict-engine/verdict/adapters/providers"
	"github.com/verdict-engine/verdict/store"
)

// Defaults for Config.
const (
	// DefaultBaseURL is the API host of Persona's current API reference. The legacy host
	// https://withpersona.com/api/v1 of older reference pages also serves the API.
	DefaultBaseURL = "https://api.withpersona.com/api/v1"
	// DefaultAPIVersion is the Persona-Version sent on every call: the latest version named
	// on https://docs.withpersona.com/versioning when this adapter was written. Pinning it
	// keeps answers stable when the API key's default version is upgraded in the dashboard.
	DefaultAPIVersion = "2025-12-08"
	// DefaultHostedFlowURL is Persona's hosted flow, opened with ?inquiry-id=.
	DefaultHostedFlowURL = "https://withpersona.com/verify"
	// DefaultTolerance is how far a webhook's signed timestamp may be from now.
	DefaultTolerance = 5 * time.Minute
)

// Environment variables read by FromEnv.
const (
	EnvWebhookSecret = "VERDICT_PERSONA_WEBHOOK_SECRET" // "secret" or "new,old" during a rotation
	EnvAPIKey        = "VERDICT_PERSONA_API_KEY"
	EnvBaseURL       = "VERDICT_PERSONA_BASE_URL"
	EnvTemplateID    = "VERDICT_PERSONA_TEMPLATE_ID"
)

// Config configures the Persona adapter. Zero values take the defaults above.
type Config struct {
	BaseURL        string // default DefaultBaseURL; tests point it at a local server
	APIKey         string // sent as "Authorization: Bearer <key>"; without it API calls return providers.ErrNotConfigured
	TemplateID     string // itmpl_… (inquiry template), itmplv_… (template version) or legacy tmpl_…
	WebhookSecrets providers.Secrets
	Tolerance      time.Duration // accepted |now - t| of a webhook signature; default 5 min

	// APIVersion is sent as Persona-Version; default DefaultAPIVersion.
	APIVersion string
	// HostedFlowURL is the base of Session.ClientURL; default DefaultHostedFlowURL.
	HostedFlowURL string
	// ApproveOnCompleted maps inquiry "completed" to approved instead of submitted, and
	// "failed" to rejected instead of pending_review. Persona marks an inquiry completed
	// when every required verification check passed and failed when one failed (the user
	// cannot go on); either may still be decisioned by a post-inquiry workflow or a member
	// (approved, declined, needs_review). Set this only when the template has no post-inquiry
	// decisioning, since approved and rejected are final and a later decision would then be
	// refused by the session state machine.
	ApproveOnCompleted bool

	Timeout    time.Duration // per attempt; default 10 s
	Retries    int           // extra attempts on network errors, 429 and 5xx; 0 means 3, negative means none
	Backoff    time.Duration // first retry delay; default 200 ms
	HTTPClient *http.Client
}

// Provider is the Persona adapter. It is safe for concurrent use.
type Provider struct {
	cfg    Config
	client *providers.Client
}

var _ providers.Provider = (*Provider)(nil)

// New returns a Provider for c with defaults filled in. It does not check c; FromEnv does.
func New(c Config) *Provider {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.APIVersion == "" {
		c.APIVersion = DefaultAPIVersion
	}
	if c.HostedFlowURL == "" {
		c.HostedFlowURL = DefaultHostedFlowURL
	}
	if c.Tolerance <= 0 {
		c.Tolerance = DefaultTolerance
	}
	p := &Provider{cfg: c}
	p.client = providers.NewClient(providers.ClientConfig{
		Provider:   "persona",
		BaseURL:    c.BaseURL,
		Timeout:    c.Timeout,
		Retries:    c.Retries,
		Backoff:    c.Backoff,
		HTTPClient: c.HTTPClient,
		Auth:       p.auth,
	})
	return p
}

// FromEnv builds a Provider from VERDICT_PERSONA_WEBHOOK_SECRET (one secret, or two
// comma-separated during a rotation), VERDICT_PERSONA_API_KEY, VERDICT_PERSONA_BASE_URL and
// VERDICT_PERSONA_TEMPLATE_ID. It returns (nil, nil) when neither a webhook secret nor an
// API key is set (Persona is not used), and an error naming the variable (never its value)
// when a value is unusable: more than two secrets, a secret or API key with spaces or
// control characters, a template id of other than letters, digits, '_' and '-', an API key
// without a template id, or a base URL that is not an absolute http(s) URL.
func FromEnv(getenv func(string) string) (*Provider, error) {
	rawSecrets := getenv(EnvWebhookSecret)
	key := strings.TrimSpace(getenv(EnvAPIKey))
	secrets := providers.ParseSecrets(rawSecrets)
	if strings.TrimSpace(rawSecrets) != "" {
		// ",,," holds no secret: say so, as the other adapters do, instead of turning
		// Persona off without a word.
		if _, err := providers.SecretsFromEnv(rawSecrets); err != nil {
			return nil, fmt.Errorf("persona: %s %w", EnvWebhookSecret, err)
		}
	}
	if len(secrets) == 0 && key == "" {
		for _, name := range []string{EnvTemplateID, EnvBaseURL} {
			if strings.TrimSpace(getenv(name)) != "" {
				return nil, fmt.Errorf("persona: %s is set but neither %s nor %s: Persona is not enabled", name, EnvWebhookSecret, EnvAPIKey)
			}
		}
		return nil, nil
	}
	for _, s := range secrets {
		if !printable(string(s)) {
			return nil, fmt.Errorf("persona: %s: secret has spaces or control characters", EnvWebhookSecret)
		}
	}
	c := Config{APIKey: key, WebhookSecrets: secrets}
	if key != "" && !printable(key) {
		return nil, fmt.Errorf("persona: %s has spaces or control characters", EnvAPIKey)
	}
	c.TemplateID = strings.TrimSpace(getenv(EnvTemplateID))
	if c.TemplateID != "" && !validID(c.TemplateID) {
		return nil, fmt.Errorf("persona: %s is not a Persona template id", EnvTemplateID)
	}
	if key != "" && c.TemplateID == "" {
		return nil, fmt.Errorf("persona: %s is set but %s is empty: inquiries cannot be created", EnvAPIKey, EnvTemplateID)
	}
	if v := strings.TrimSpace(getenv(EnvBaseURL)); v != "" {
		if err := providers.CheckBaseURL(v); err != nil {
			return nil, fmt.Errorf("persona: %s: %w", EnvBaseURL, err)
		}
		c.BaseURL = v
	}
	return New(c), nil
}

// Name returns "persona".
func (p *Provider) Name() string { return "persona" }

func (p *Provider) auth(req *http.Request, _ []byte) error {
	req.Header.Set("Authorization", "Bearer "+p.cfg.APIKey)
	req.Header.Set("Persona-Version", p.cfg.APIVersion)
	// Answers are parsed inflection-insensitively anyway; asking for kebab keeps them in
	// the shape of the API reference whatever the key's dashboard default is.
	req.Header.Set("Key-Inflection", "kebab")
	return nil
}

func (p *Provider) configured(op string) error {
	if p.cfg.APIKey == "" {
		return fmt.Errorf("persona %s: %w", op, providers.ErrNotConfigured)
	}
	return nil
}

// Start creates an inquiry from the configured template with reference-id = req.UserID
// (no personal data is sent) and returns its id (inq_…) as ProviderRef, the hosted-flow URL
// as ClientURL, and the session token as ClientToken when Persona's answer carries one (a
// newly created inquiry can be opened with its id alone; see Resume for a pending one).
// req.IdempotencyKey is sent as Idempotency-Key on every attempt; when empty, one is derived
// from req.VerificationID, or drawn at random. Locale and CallbackURL are not sent: Persona
// takes the language from the browser and webhooks are configured in its dashboard.
// Errors: providers.ErrNotConfigured without API key or template; *providers.APIError for a
// non-2xx answer; providers.ErrMalformedPayload when the answer has no inquiry id.
func (p *Provider) Start(ctx context.Context, req providers.StartRequest) (providers.Session, error) {
	const op = "create inquiry"
	if err := p.configured(op); err != nil {
		return providers.Session{}, err
	}
	if p.cfg.TemplateID == "" {
		return providers.Session{}, fmt.Errorf("persona %s: no template id: %w", op, providers.ErrNotConfigured)
	}
	if req.UserID == "" {
		return providers.Session{}, fmt.Errorf("persona %s: empty user id", op)
	}
	key := req.IdempotencyKey
	if key == "" && req.VerificationID != "" {
		key = "verdict-start-" + req.VerificationID
	}
	if key == "" {
		key = randomKey()
	}
	in := map[string]any{
		"data": map[string]any{
			"attributes": map[string]any{
				templateAttribute(p.cfg.TemplateID): p.cfg.TemplateID,
				"reference-id":                      req.UserID,
			},
		},
	}
	var out json.RawMessage
	if err := p.client.Do(ctx, op, http.MethodPost, "/inquiries", in, &out, key); err != nil {
		return providers.Session{}, err
	}
	inq, err := parseInquiryDocument(out)
	if err != nil {
		return providers.Session{}, fmt.Errorf("persona %s: %w", op, err)
	}
	return p.session(inq.id, inq.sessionToken), nil
}

// Resume asks Persona for a session token for an inquiry the person already started
// (POST /inquiries/{id}/resume) and returns it with a hosted-flow URL carrying it. Persona
// answers 409 (a *providers.APIError) for completed, failed, decisioned or redacted
// inquiries; resuming an expired one moves it back to pending at Persona.
func (p *Provider) Resume(ctx context.Context, providerRef string) (providers.Session, error) {
	const op = "resume inquiry"
	if err := p.configured(op); err != nil {
		return providers.Session{}, err
	}
	if !validID(providerRef) {
		return providers.Session{}, fmt.Errorf("persona %s: invalid inquiry id", op)
	}
	var out json.RawMessage
	if err := p.client.Do(ctx, op, http.MethodPost, "/inquiries/"+providerRef+"/resume", nil, &out, ""); err != nil {
		return providers.Session{}, err
	}
	inq, err := parseInquiryDocument(out)
	if err != nil {
		return providers.Session{}, fmt.Errorf("persona %s: %w", op, err)
	}
	if inq.id != providerRef {
		return providers.Session{}, fmt.Errorf("persona %s: answer is about another inquiry: %w", op, providers.ErrMalformedPayload)
	}
	return p.session(inq.id, inq.sessionToken), nil
}

func (p *Provider) session(id, token string) providers.Session {
	q := url.Values{"inquiry-id": {id}}
	if token != "" {
		q.Set("session-token", token)
	}
	return providers.Session{ProviderRef: id, ClientURL: p.cfg.HostedFlowURL + "?" + q.Encode(), ClientToken: token}
}

// Status retrieves the inquiry (GET /inquiries/{id}) and maps its status (see
// StatusFromInquiry). OccurredAt is the inquiry's timestamp for that status
// (decisioned-at, completed-at, failed-at, expired-at, started-at, created-at), else its
// updated-at. An unknown status gives an empty Status. Errors as for Start.
func (p *Provider) Status(ctx context.Context, providerRef string) (providers.Update, error) {
	const op = "retrieve inquiry"
	if err := p.configured(op); err != nil {
		return providers.Update{}, err
	}
	if !validID(providerRef) {
		return providers.Update{}, fmt.Errorf("persona %s: invalid inquiry id", op)
	}
	var out json.RawMessage
	if err := p.client.Do(ctx, op, http.MethodGet, "/inquiries/"+providerRef, nil, &out, ""); err != nil {
		return providers.Update{}, err
	}
	inq, err := parseInquiryDocument(out)
	if err != nil {
		return providers.Update{}, fmt.Errorf("persona %s: %w", op, err)
	}
	if inq.id != providerRef {
		return providers.Update{}, fmt.Errorf("persona %s: answer is about another inquiry: %w", op, providers.ErrMalformedPayload)
	}
	status := StatusFromInquiry(inq.status, p.cfg.ApproveOnCompleted)
	return providers.Update{
		ProviderRef: inq.id,
		Status:      status,
		ReasonCodes: reasonCodes(status, inq.failedChecks, inquiryStatusCodes[inq.status]),
		OccurredAt:  inq.statusTime(),
	}, nil
}

// Cancel expires the inquiry at Persona (POST /inquiries/{id}/expire), which also expires
// its sessions and cancels pending verifications. Persona allows an expired inquiry to be
// resumed later through its API; this adapter never does so for a cancelled session.
// Expiring is idempotent at Persona, so no idempotency key is sent.
func (p *Provider) Cancel(ctx context.Context, providerRef string) error {
	const op = "expire inquiry"
	if err := p.configured(op); err != nil {
		return err
	}
	if !validID(providerRef) {
		return fmt.Errorf("persona %s: invalid inquiry id", op)
	}
	return p.client.Do(ctx, op, http.MethodPost, "/inquiries/"+providerRef+"/expire", nil, nil, "")
}

// Inquiry statuses as Persona's API reports them (https://docs.withpersona.com/model-lifecycle).
const (
	inqCreated     = "created"
	inqPending     = "pending"
	inqCompleted   = "completed"
	inqFailed      = "failed"
	inqExpired     = "expired"
	inqNeedsReview = "needs_review"
	inqApproved    = "approved"
	inqDeclined    = "declined"
)

// StatusFromInquiry maps an inquiry's attributes.status to a canonical status; "" for a
// status this adapter does not know. completed maps to submitted and failed to
// pending_review (a decision may still follow at Persona; until then a reviewer here can
// decide), or to approved and rejected when approveOnCompleted is set (see
// Config.ApproveOnCompleted).
func StatusFromInquiry(status string, approveOnCompleted bool) string {
	switch status {
	case inqCreated:
		return store.StatusInitiated
	case inqPending:
		return store.StatusCapturing
	case inqCompleted:
		if approveOnCompleted {
			return store.StatusApproved
		}
		return store.StatusSubmitted
	case inqFailed:
		if approveOnCompleted {
			return store.StatusRejected
		}
		return store.StatusPendingReview
	case inqExpired:
		return store.StatusExpired
	case inqNeedsReview:
		return store.StatusPendingReview
	case inqApproved:
		return store.StatusApproved
	case inqDeclined:
		return store.StatusRejected
	}
	return ""
}

// StatusFromEvent maps a webhook event name to a canonical status; "" for events that say
// nothing about the inquiry's status (inquiry.transitioned, inquiry.redacted,
// inquiry.updated-tags, account.*, verification.*, …).
func StatusFromEvent(name string, approveOnCompleted bool) string {
	if s, ok := eventInquiryStatus[name]; ok {
		return StatusFromInquiry(s, approveOnCompleted)
	}
	return ""
}

// eventInquiryStatus is the event → inquiry status table of Persona's lifecycle page.
var eventInquiryStatus = map[string]string{
	"inquiry.created":           inqCreated,
	"inquiry.started":           inqPending,
	"inquiry.completed":         inqCompleted,
	"inquiry.failed":            inqFailed,
	"inquiry.expired":           inqExpired,
	"inquiry.marked-for-review": inqNeedsReview,
	"inquiry.approved":          inqApproved,
	"inquiry.declined":          inqDeclined,
}

// inquiryStatusCodes are the reason codes given when the payload names no failed
// verification check.
var inquiryStatusCodes = map[string]string{
	inqFailed:      "INQUIRY_FAILED",
	inqExpired:     "INQUIRY_EXPIRED",
	inqNeedsReview: "INQUIRY_MARKED_FOR_REVIEW",
	inqDeclined:    "INQUIRY_DECLINED",
}

// reasonCodes gives the failed verification checks' codes, else the fallback, for outcomes
// that need a reason (rejected, pending review, expired); nil otherwise.
func reasonCodes(status string, failedChecks []string, fallback string) []string {
	switch status {
	case store.StatusRejected, store.StatusPendingReview:
		if len(failedChecks) > 0 {
			return failedChecks
		}
	case store.StatusExpired:
	default:
		return nil
	}
	if fallback == "" {
		return nil
	}
	return []string{fallback}
}

// templateAttribute is the create-inquiry attribute that takes id, by its prefix.
func templateAttribute(id string) string {
	switch {
	case strings.HasPrefix(id, "itmplv_"):
		return "inquiry-template-version-id"
	case strings.HasPrefix(id, "tmpl_"):
		return "template-id"
	}
	return "inquiry-template-id"
}

// validID accepts Persona ids (inq_…, itmpl_…): letters, digits, '_' and '-', so an id can
// go into a URL path unescaped.
func validID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func printable(s string) bool {
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return s != ""
}

func randomKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "verdict-" + hex.EncodeToString(b[:])
}

// errMalformed wraps providers.ErrMalformedPayload with a detail that quotes no content.
func errMalformed(detail string) error {
	return fmt.Errorf("%w: %s", providers.ErrMalformedPayload, detail)
}
