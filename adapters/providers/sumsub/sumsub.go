// Package sumsub is the Sumsub adapter of providers.Provider: it creates applicants and SDK
// access tokens through Sumsub's signed API, reads an applicant's review status, and verifies
// and parses Sumsub's webhooks (X-Payload-Digest). Only our user id is sent to Sumsub; the
// person's data is captured by Sumsub's SDK.
package sumsub

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/verdict-engine/verdict/adapters/providers"
)

// Name is the provider's id in URLs, configuration and records.
const Name = "sumsub"

// DefaultBaseURL is Sumsub's API (production and sandbox alike: the app token decides).
const DefaultBaseURL = "https://api.sumsub.com"

// Config configures the adapter.
type Config struct {
	BaseURL   string // default DefaultBaseURL; tests point it at a local server
	AppToken  string // X-App-Token
	SecretKey string // the app token's secret, signs each request (X-App-Access-Sig)
	LevelName string // verification level applicants are created on
	// WebhookSecrets are the webhook's "Secret key" values from the Sumsub dashboard
	// (new one first during a rotation).
	WebhookSecrets providers.Secrets
	// TokenTTL is the lifetime of the SDK access token Start returns; default 10 minutes.
	TokenTTL   time.Duration
	Timeout    time.Duration // per attempt; default 10 s
	Retries    int           // extra attempts on network errors, 429 and 5xx; default 3, negative for none
	Backoff    time.Duration // first retry delay; default 200 ms
	HTTPClient *http.Client
	// Now is the clock for request timestamps (X-App-Access-Ts); default time.Now.
	Now func() time.Time
}

// Provider is the Sumsub adapter. It is safe for concurrent use.
type Provider struct {
	cfg        Config
	client     *providers.Client
	configured bool // API credentials and level present
}

var _ providers.Provider = (*Provider)(nil)

// New returns a Provider. Without AppToken, SecretKey or LevelName, Start and Status return
// an error wrapping providers.ErrNotConfigured; webhooks still verify with WebhookSecrets.
func New(c Config) *Provider {
	c.BaseURL = strings.TrimRight(strings.TrimSpace(c.BaseURL), "/")
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	if c.TokenTTL <= 0 {
		c.TokenTTL = 10 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	p := &Provider{cfg: c, configured: c.AppToken != "" && c.SecretKey != "" && c.LevelName != ""}
	p.client = providers.NewClient(providers.ClientConfig{
		Provider:   Name,
		BaseURL:    c.BaseURL,
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
	EnvWebhookSecret = "VERDICT_SUMSUB_WEBHOOK_SECRET" // "secret" or "new,old"
	EnvAppToken      = "VERDICT_SUMSUB_APP_TOKEN"
	EnvSecretKey     = "VERDICT_SUMSUB_SECRET_KEY"
	EnvBaseURL       = "VERDICT_SUMSUB_BASE_URL"
	EnvLevelName     = "VERDICT_SUMSUB_LEVEL_NAME"
)

// FromEnv builds a Provider from the VERDICT_SUMSUB_* variables. It returns (nil, nil) when
// none is set, and an error when the values cannot work together: more than two webhook
// secrets, an app token without its secret key (or the reverse), API credentials without a
// level name, a base URL or level name without credentials, or a base URL that is not an
// absolute https URL (http is accepted for localhost only).
func FromEnv(getenv func(string) string) (*Provider, error) {
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	rawSecrets, token, key, base, level :=
		get(EnvWebhookSecret), get(EnvAppToken), get(EnvSecretKey), get(EnvBaseURL), get(EnvLevelName)
	if rawSecrets == "" && token == "" && key == "" && base == "" && level == "" {
		return nil, nil
	}
	secrets, err := providers.SecretsFromEnv(rawSecrets)
	if err != nil {
		return nil, fmt.Errorf("sumsub: %s %w", EnvWebhookSecret, err)
	}
	switch {
	case token != "" && key == "":
		return nil, fmt.Errorf("sumsub: %s is set without %s", EnvAppToken, EnvSecretKey)
	case key != "" && token == "":
		return nil, fmt.Errorf("sumsub: %s is set without %s", EnvSecretKey, EnvAppToken)
	case token != "" && level == "":
		return nil, fmt.Errorf("sumsub: %s is required with API credentials", EnvLevelName)
	case token == "" && (base != "" || level != ""):
		return nil, fmt.Errorf("sumsub: %s and %s need %s and %s", EnvBaseURL, EnvLevelName, EnvAppToken, EnvSecretKey)
	}
	if base != "" {
		if err := providers.CheckBaseURL(base); err != nil {
			return nil, fmt.Errorf("sumsub: %s: %w", EnvBaseURL, err)
		}
	}
	return New(Config{BaseURL: base, AppToken: token, SecretKey: key, LevelName: level, WebhookSecrets: secrets}), nil
}

// Name returns "sumsub".
func (p *Provider) Name() string { return Name }

// sign sets Sumsub's app-token headers on one attempt. X-App-Access-Sig is the lowercase hex
// HMAC-SHA256, keyed with the secret key, of ts + METHOD + request URI (path and query, as
// sent) + body; the timestamp is taken anew for every attempt.
func (p *Provider) sign(req *http.Request, body []byte) error {
	ts := strconv.FormatInt(p.cfg.Now().Unix(), 10)
	msg := make([]byte, 0, len(ts)+len(req.Method)+len(req.URL.RequestURI())+len(body))
	msg = append(msg, ts...)
	msg = append(msg, strings.ToUpper(req.Method)...)
	msg = append(msg, req.URL.RequestURI()...)
	msg = append(msg, body...)
	req.Header.Set("X-App-Token", p.cfg.AppToken)
	req.Header.Set("X-App-Access-Ts", ts)
	req.Header.Set("X-App-Access-Sig", providers.HexHMAC(providers.SHA256, []byte(p.cfg.SecretKey), msg))
	return nil
}

// queryEscape escapes a query value with %20 for spaces: Sumsub signs the URI as sent and
// documents %20, not '+'.
func queryEscape(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }

type createApplicantRequest struct {
	ExternalUserID string `json:"externalUserId"`
}

type applicant struct {
	ID string `json:"id"`
}

type accessTokenRequest struct {
	UserID    string `json:"userId"`
	LevelName string `json:"levelName"`
	TTLInSecs int64  `json:"ttlInSecs"`
}

type accessTokenResponse struct {
	Token string `json:"token"`
}

// Start creates an applicant on the configured level with our user id as externalUserId
// (nothing else about the person is sent) and returns its id as ProviderRef and an SDK access
// token as ClientToken. Sumsub keeps one applicant per externalUserId and answers a second
// create with 409 Conflict; Start then fetches the existing applicant, so a retried Start
// returns the same ProviderRef. Errors: providers.ErrNotConfigured without credentials, an
// *providers.APIError for a non-success answer.
func (p *Provider) Start(ctx context.Context, req providers.StartRequest) (providers.Session, error) {
	if !p.configured {
		return providers.Session{}, fmt.Errorf("sumsub start: %w", providers.ErrNotConfigured)
	}
	if req.UserID == "" {
		return providers.Session{}, errors.New("sumsub start: user id is required")
	}
	var a applicant
	err := p.client.Do(ctx, "create applicant", http.MethodPost,
		"/resources/applicants?levelName="+queryEscape(p.cfg.LevelName),
		createApplicantRequest{ExternalUserID: req.UserID}, &a, "")
	if apiErr, ok := errors.AsType[*providers.APIError](err); ok && apiErr.Status == http.StatusConflict {
		a = applicant{}
		err = p.client.Do(ctx, "get applicant", http.MethodGet,
			"/resources/applicants/-;externalUserId="+url.PathEscape(req.UserID)+"/one", nil, &a, "")
	}
	if err != nil {
		return providers.Session{}, err
	}
	if a.ID == "" {
		return providers.Session{}, errors.New("sumsub create applicant: answer has no applicant id")
	}
	var tok accessTokenResponse
	err = p.client.Do(ctx, "create access token", http.MethodPost, "/resources/accessTokens/sdk",
		accessTokenRequest{UserID: req.UserID, LevelName: p.cfg.LevelName, TTLInSecs: int64(p.cfg.TokenTTL / time.Second)},
		&tok, "")
	if err != nil {
		return providers.Session{}, err
	}
	if tok.Token == "" {
		return providers.Session{}, errors.New("sumsub create access token: answer has no token")
	}
	return providers.Session{ProviderRef: a.ID, ClientToken: tok.Token}, nil
}

type reviewResult struct {
	ReviewAnswer     string   `json:"reviewAnswer"`
	ReviewRejectType string   `json:"reviewRejectType"`
	RejectLabels     []string `json:"rejectLabels"`
}

type applicantStatus struct {
	ReviewStatus string        `json:"reviewStatus"`
	ReviewResult *reviewResult `json:"reviewResult"`
	ReviewDate   string        `json:"reviewDate"`
	CreateDate   string        `json:"createDate"`
}

// Status reads GET /resources/applicants/{id}/status and maps reviewStatus and reviewResult
// to a canonical status: init → initiated; pending, prechecked, queued, awaitingService →
// submitted; onHold → pending_review; completed → approved (GREEN), rejected (RED FINAL),
// needs_resubmission (RED RETRY) or pending_review (RED, other reject type); anything else →
// "". OccurredAt is reviewDate, else createDate, else zero. Errors as Start.
func (p *Provider) Status(ctx context.Context, providerRef string) (providers.Update, error) {
	if !p.configured {
		return providers.Update{}, fmt.Errorf("sumsub status: %w", providers.ErrNotConfigured)
	}
	if providerRef == "" {
		return providers.Update{}, errors.New("sumsub status: provider ref is required")
	}
	var st applicantStatus
	if err := p.client.Do(ctx, "get status", http.MethodGet,
		"/resources/applicants/"+url.PathEscape(providerRef)+"/status", nil, &st, ""); err != nil {
		return providers.Update{}, err
	}
	var rr reviewResult
	if st.ReviewResult != nil {
		rr = *st.ReviewResult
	}
	u := providers.Update{
		ProviderRef: providerRef,
		Status:      reviewStatusToCanonical(st.ReviewStatus, rr.ReviewAnswer, rr.ReviewRejectType),
	}
	if st.ReviewStatus == "completed" && rr.ReviewAnswer == answerRed {
		u.ReasonCodes = reasonCodes(rr.RejectLabels)
	}
	for _, d := range []string{st.ReviewDate, st.CreateDate} {
		if t, err := parseAPIDate(d); err == nil {
			u.OccurredAt = t
			break
		}
	}
	return u, nil
}

// Cancel returns nil: Sumsub has no way to cancel an applicant. Its reset (back to init,
// documents deactivated), deactivate and reject methods change or close the applicant's
// record rather than end a pending verification, so the session is only expired on our side.
func (p *Provider) Cancel(ctx context.Context, providerRef string) error { return nil }
