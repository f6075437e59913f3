// Package veriff is the Veriff (https://www.veriff.com) identity-verification adapter: it
// opens sessions with POST /v1/sessions, polls GET /v1/sessions/{id}/decision, and verifies
// and maps Veriff's decision and event webhooks onto the canonical statuses of store.Status*.
//
// Veriff authenticates both directions with the integration's API key (X-AUTH-CLIENT) and
// a hex HMAC-SHA256 under the integration's shared secret key (X-HMAC-SIGNATURE): over the
// request body for POST and PATCH, over the session id for GET and DELETE, and over the raw
// body for webhooks. No timestamp is signed and no event id is sent, so replays are
// recognised by Event.ID, a digest of what identifies the delivery.
package veriff

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/verdict-engine/verdict/adapters/providers"
)

// DefaultBaseURL is Veriff's public API host.
const DefaultBaseURL = "https://stationapi.veriff.com"

// Header names Veriff uses on API calls and webhooks.
const (
	headerAuthClient = "X-AUTH-CLIENT"
	headerSignature  = "X-HMAC-SIGNATURE"
)

// Config configures the adapter. Every field is optional: without APIKey the API calls
// return providers.ErrNotConfigured; without WebhookSecrets every webhook is rejected.
type Config struct {
	// BaseURL is the API host, default DefaultBaseURL. Tests point it at a local server.
	BaseURL string
	// APIKey is the integration's API key, sent as X-AUTH-CLIENT. When set, webhooks must
	// carry the same value in X-AUTH-CLIENT.
	APIKey string
	// SharedSecret is the integration's shared secret key, which signs API requests.
	SharedSecret string
	// WebhookSecrets verify X-HMAC-SIGNATURE on webhooks. Veriff signs webhooks with the
	// same shared secret key; two entries allow a rotation (the new one first).
	WebhookSecrets providers.Secrets
	// CallbackURL is where Veriff redirects the person's browser when the hosted flow ends
	// (verification.callback). It is not the webhook URL: Veriff sends webhooks to the URLs
	// configured for the integration in its Customer Portal. Empty: the portal's default.
	CallbackURL string
	// Timeout, Retries, Backoff and HTTPClient configure the HTTP client
	// (providers.ClientConfig; zero values take its defaults).
	Timeout    time.Duration
	Retries    int
	Backoff    time.Duration
	HTTPClient *http.Client
	// Now is the clock for times Veriff does not give (default time.Now).
	Now func() time.Time
}

// Provider is the Veriff adapter. It is safe for concurrent use.
type Provider struct {
	apiKey       string
	sharedSecret []byte
	secrets      providers.Secrets
	callbackURL  string
	now          func() time.Time
	client       *providers.Client
}

var _ providers.Provider = (*Provider)(nil)

// New returns a Provider for c.
func New(c Config) *Provider {
	p := &Provider{
		apiKey:       c.APIKey,
		sharedSecret: []byte(c.SharedSecret),
		secrets:      c.WebhookSecrets,
		callbackURL:  c.CallbackURL,
		now:          c.Now,
	}
	if p.now == nil {
		p.now = time.Now
	}
	base := strings.TrimRight(c.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	p.client = providers.NewClient(providers.ClientConfig{
		Provider:   "veriff",
		BaseURL:    base,
		Timeout:    c.Timeout,
		Retries:    c.Retries,
		Backoff:    c.Backoff,
		Auth:       p.sign,
		HTTPClient: c.HTTPClient,
	})
	return p
}

// Environment variables read by FromEnv.
const (
	EnvWebhookSecret = "VERDICT_VERIFF_WEBHOOK_SECRET"
	EnvAPIKey        = "VERDICT_VERIFF_API_KEY"
	EnvSharedSecret  = "VERDICT_VERIFF_SHARED_SECRET"
	EnvBaseURL       = "VERDICT_VERIFF_BASE_URL"
)

// FromEnv builds a Provider from the VERDICT_VERIFF_* variables read with getenv. It
// returns (nil, nil) when none is set. VERDICT_VERIFF_WEBHOOK_SECRET is "secret" or
// "new,old"; VERDICT_VERIFF_SHARED_SECRET defaults to its first entry (Veriff signs API
// calls and webhooks with the same shared secret key), and the webhook secret defaults to
// the shared secret. It returns an error for unusable values: more than two webhook
// secrets, an empty list, an API key with no secret to sign with, a base URL that is not
// https (http is accepted for localhost only).
func FromEnv(getenv func(string) string) (*Provider, error) {
	hook := strings.TrimSpace(getenv(EnvWebhookSecret))
	key := strings.TrimSpace(getenv(EnvAPIKey))
	shared := strings.TrimSpace(getenv(EnvSharedSecret))
	base := strings.TrimSpace(getenv(EnvBaseURL))
	if hook == "" && key == "" && shared == "" && base == "" {
		return nil, nil
	}
	secrets, err := providers.SecretsFromEnv(hook)
	if err != nil {
		return nil, fmt.Errorf("veriff: %s %w", EnvWebhookSecret, err)
	}
	if shared == "" && len(secrets) > 0 {
		shared = string(secrets[0])
	}
	if len(secrets) == 0 && shared != "" {
		secrets = providers.Secrets{[]byte(shared)}
	}
	if shared == "" {
		return nil, fmt.Errorf("veriff: neither %s nor %s is set: API calls cannot be signed and webhooks cannot be verified",
			EnvSharedSecret, EnvWebhookSecret)
	}
	if base != "" {
		if err := providers.CheckBaseURL(base); err != nil {
			return nil, fmt.Errorf("veriff: %s: %w", EnvBaseURL, err)
		}
	}
	return New(Config{BaseURL: base, APIKey: key, SharedSecret: shared, WebhookSecrets: secrets}), nil
}

// Name returns "veriff".
func (p *Provider) Name() string { return "veriff" }

// sign is the Client's Auth hook: X-AUTH-CLIENT is the API key; X-HMAC-SIGNATURE is the hex
// HMAC-SHA256 under the shared secret of the body for requests with one (POST, PATCH), of
// the session id in the path for those without (GET, DELETE). Veriff does not require the
// signature on POST /v1/sessions; it is sent anyway when a shared secret is configured.
func (p *Provider) sign(req *http.Request, body []byte) error {
	if p.apiKey == "" {
		return providers.ErrNotConfigured
	}
	req.Header.Set(headerAuthClient, p.apiKey)
	msg := body
	if len(body) == 0 {
		id, ok := sessionIDFromPath(req.URL.Path)
		if !ok {
			return errors.New("no session id in the path to sign")
		}
		msg = []byte(id)
	}
	if len(p.sharedSecret) == 0 {
		if len(body) > 0 {
			return nil
		}
		return fmt.Errorf("no shared secret to sign the request: %w", providers.ErrNotConfigured)
	}
	m := hmac.New(sha256.New, p.sharedSecret)
	m.Write(msg)
	req.Header.Set(headerSignature, hex.EncodeToString(m.Sum(nil)))
	return nil
}

// sessionIDFromPath returns the segment after "/v1/sessions/" (the BaseURL may carry a
// path prefix of its own).
func sessionIDFromPath(path string) (string, bool) {
	const marker = "/v1/sessions/"
	i := strings.LastIndex(path, marker)
	if i < 0 {
		return "", false
	}
	id, _, _ := strings.Cut(path[i+len(marker):], "/")
	return id, validRef(id)
}

// validRef accepts the session ids Veriff issues (UUIDs) and anything else made of
// letters, digits, '-' and '_', so that a reference is safe in a path and unambiguous to
// sign.
func validRef(ref string) bool {
	if ref == "" || len(ref) > 128 {
		return false
	}
	for _, r := range ref {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

type createRequest struct {
	Verification createVerification `json:"verification"`
}

type createVerification struct {
	Callback   string `json:"callback,omitempty"`
	VendorData string `json:"vendorData,omitempty"`
}

type createResponse struct {
	Status       string `json:"status"`
	Verification struct {
		ID           string `json:"id"`
		URL          string `json:"url"`
		SessionToken string `json:"sessionToken"`
	} `json:"verification"`
}

// Start opens a session with POST /v1/sessions. It sends the user id as vendorData and the
// configured CallbackURL (the browser redirect), nothing about the person. req.CallbackURL
// is not sent: Veriff takes webhook URLs from the integration's settings, not per session.
// Veriff documents no idempotency header, so req.IdempotencyKey is not sent (it would be
// ignored at best): a create retried after a lost answer may open a second session, and
// the unused one expires after 7 days. Errors: providers.ErrNotConfigured without an API
// key, *providers.APIError for a non-2xx answer, providers.ErrMalformedPayload for an
// answer without a usable session id.
func (p *Provider) Start(ctx context.Context, req providers.StartRequest) (providers.Session, error) {
	if p.apiKey == "" {
		return providers.Session{}, fmt.Errorf("veriff start: %w", providers.ErrNotConfigured)
	}
	in := createRequest{Verification: createVerification{Callback: p.callbackURL, VendorData: req.UserID}}
	var out createResponse
	if err := p.client.Do(ctx, "start", http.MethodPost, "/v1/sessions", in, &out, ""); err != nil {
		return providers.Session{}, err
	}
	if !validRef(out.Verification.ID) {
		return providers.Session{}, fmt.Errorf("veriff start: answer without a usable verification.id: %w", providers.ErrMalformedPayload)
	}
	return providers.Session{
		ProviderRef: out.Verification.ID,
		ClientURL:   out.Verification.URL,
		ClientToken: out.Verification.SessionToken,
	}, nil
}

type decisionResponse struct {
	Status       string        `json:"status"`
	Verification *verification `json:"verification"`
}

// Status asks GET /v1/sessions/{id}/decision for the session's decision. While Veriff has
// none yet (verification is null) the Update has an empty Status. Errors:
// providers.ErrNotConfigured without an API key or shared secret, *providers.APIError for
// a non-2xx answer (404 for an unknown session), providers.ErrMalformedPayload for an
// answer that cannot be mapped.
func (p *Provider) Status(ctx context.Context, providerRef string) (providers.Update, error) {
	if p.apiKey == "" {
		return providers.Update{}, fmt.Errorf("veriff status: %w", providers.ErrNotConfigured)
	}
	if !validRef(providerRef) {
		return providers.Update{}, fmt.Errorf("veriff status: invalid session id")
	}
	var out decisionResponse
	if err := p.client.Do(ctx, "status", http.MethodGet, "/v1/sessions/"+providerRef+"/decision", nil, &out, ""); err != nil {
		return providers.Update{}, err
	}
	if out.Verification == nil {
		return providers.Update{ProviderRef: providerRef}, nil
	}
	d, err := mapDecision(out.Verification, p.now())
	if err != nil {
		return providers.Update{}, fmt.Errorf("veriff status: %w", err)
	}
	if d.ref != providerRef {
		return providers.Update{}, fmt.Errorf("veriff status: answer is about another session: %w", providers.ErrMalformedPayload)
	}
	return providers.Update{
		ProviderRef: providerRef,
		Status:      d.status,
		ReasonCodes: d.reasons,
		OccurredAt:  d.occurredAt,
	}, nil
}

// Cancel returns nil without calling Veriff: PATCH /v1/sessions/{id} only accepts the
// status "submitted", and DELETE /v1/sessions/{id} is off by default, rate-limited and
// erases the session's data. An unused Veriff session expires on its own after 7 days;
// the session is expired on our side by the caller.
func (p *Provider) Cancel(ctx context.Context, providerRef string) error {
	return nil
}
