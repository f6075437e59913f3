// Package onfido is the Onfido (Entrust Identity Verification) adapter: it opens Onfido
// Studio workflow runs, reads their status (and, for Classic checks, the reports behind
// them) and verifies and maps Onfido's webhooks onto the canonical statuses of store.Status*.
//
// Onfido API v3.6: https://documentation.onfido.com/api/latest/
package onfido

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/verdict-engine/verdict/adapters/providers"
	"github.com/verdict-engine/verdict/store"
)

// DefaultBaseURL is Onfido's EU API region at version 3.6. The US and CA regions are
// https://api.us.onfido.com/v3.6 and https://api.ca.onfido.com/v3.6.
const DefaultBaseURL = "https://api.eu.onfido.com/v3.6"

// Placeholder applicant names. Onfido's v3.6 API requires first_name and last_name on
// POST /applicants; we hold no personal data, so the applicant is created with these
// constants and the person's details come from the documents captured in the workflow.
const (
	placeholderFirstName = "Verdict"
	placeholderLastName  = "Applicant"
)

// Config configures the Onfido adapter.
type Config struct {
	BaseURL        string // default DefaultBaseURL
	APIToken       string // "api_live..." or "api_sandbox..."; empty: no API calls (ErrNotConfigured)
	WorkflowID     string // the Studio workflow Start runs
	WebhookSecrets providers.Secrets
	Timeout        time.Duration // per attempt; default 10 s
	Retries        int           // extra attempts on network errors, 429 and 5xx; 0 means 3, negative means none
	Backoff        time.Duration // first retry delay; default 200 ms
	HTTPClient     *http.Client
}

// Provider is the Onfido implementation of providers.Provider.
type Provider struct {
	cfg    Config
	client *providers.Client
}

var _ providers.Provider = (*Provider)(nil)

// New returns an Onfido provider for c, with defaults filled in.
func New(c Config) *Provider {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	token := c.APIToken
	return &Provider{
		cfg: c,
		client: providers.NewClient(providers.ClientConfig{
			Provider: "onfido",
			BaseURL:  c.BaseURL,
			Timeout:  c.Timeout,
			Retries:  c.Retries,
			Backoff:  c.Backoff,
			Auth: func(req *http.Request, _ []byte) error {
				req.Header.Set("Authorization", "Token token="+token)
				return nil
			},
			HTTPClient: c.HTTPClient,
		}),
	}
}

// Environment variables read by FromEnv.
const (
	EnvWebhookSecret = "VERDICT_ONFIDO_WEBHOOK_SECRET" // "token" or "new,old" during a rotation
	EnvAPIToken      = "VERDICT_ONFIDO_API_TOKEN"
	EnvBaseURL       = "VERDICT_ONFIDO_BASE_URL"
	EnvWorkflowID    = "VERDICT_ONFIDO_WORKFLOW_ID"
)

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// FromEnv builds a Provider from the VERDICT_ONFIDO_* variables read through getenv. It
// returns (nil, nil) when neither a webhook secret nor an API token is set (Onfido is not
// enabled), and an error naming the variable (never its value) when a value is unusable:
// more than two webhook secrets, a secret list with no secret in it, an API token with
// whitespace in it, a base URL that is not an absolute http(s) URL, a workflow id that is
// not a UUID, or an API token without a workflow id.
func FromEnv(getenv func(string) string) (*Provider, error) {
	rawSecret := getenv(EnvWebhookSecret)
	token := strings.TrimSpace(getenv(EnvAPIToken))
	if strings.TrimSpace(rawSecret) == "" && token == "" {
		// Settings of an adapter that is not enabled are a mistake to say, not to ignore.
		for _, name := range []string{EnvWorkflowID, EnvBaseURL} {
			if strings.TrimSpace(getenv(name)) != "" {
				return nil, fmt.Errorf("onfido config: %s is set but neither %s nor %s: Onfido is not enabled", name, EnvWebhookSecret, EnvAPIToken)
			}
		}
		return nil, nil
	}
	var c Config
	secrets, err := providers.SecretsFromEnv(rawSecret)
	if err != nil {
		return nil, fmt.Errorf("onfido config: %s %w", EnvWebhookSecret, err)
	}
	c.WebhookSecrets = secrets
	if token != "" {
		if strings.ContainsFunc(token, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return nil, fmt.Errorf("onfido config: %s contains whitespace or control characters", EnvAPIToken)
		}
		c.APIToken = token
	}
	if base := strings.TrimSpace(getenv(EnvBaseURL)); base != "" {
		if err := providers.CheckBaseURL(base); err != nil {
			return nil, fmt.Errorf("onfido config: %s: %w", EnvBaseURL, err)
		}
		c.BaseURL = base
	}
	if wf := strings.TrimSpace(getenv(EnvWorkflowID)); wf != "" {
		if !uuidRE.MatchString(wf) {
			return nil, fmt.Errorf("onfido config: %s is not a UUID", EnvWorkflowID)
		}
		c.WorkflowID = wf
	}
	if c.APIToken != "" && c.WorkflowID == "" {
		return nil, fmt.Errorf("onfido config: %s is required with %s", EnvWorkflowID, EnvAPIToken)
	}
	return New(c), nil
}

// Name returns "onfido".
func (p *Provider) Name() string { return "onfido" }

type applicantRequest struct {
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
}

type applicantResponse struct {
	ID string `json:"id"`
}

type workflowRunLink struct {
	URL      string `json:"url,omitempty"`
	Language string `json:"language,omitempty"`
}

type workflowRunRequest struct {
	WorkflowID     string           `json:"workflow_id"`
	ApplicantID    string           `json:"applicant_id"`
	CustomerUserID string           `json:"customer_user_id,omitempty"`
	Link           *workflowRunLink `json:"link,omitempty"`
}

// workflowRun is the part of Onfido's workflow run object the adapter reads. output and
// the error message are deliberately not decoded: they may carry personal data.
type workflowRun struct {
	ID          string          `json:"id"`
	ApplicantID string          `json:"applicant_id"`
	Status      string          `json:"status"`
	Reasons     []string        `json:"reasons"`
	SDKToken    string          `json:"sdk_token"`
	Link        workflowRunLink `json:"link"`
	UpdatedAt   string          `json:"updated_at"`
}

type sdkTokenRequest struct {
	ApplicantID string `json:"applicant_id"`
}

type sdkTokenResponse struct {
	Token string `json:"token"`
}

var localeRE = regexp.MustCompile(`^[a-z]{2}([-_][A-Z]{2})?$`)

// Start creates an Onfido applicant (with placeholder names: Onfido requires them and we
// hold no personal data) and a workflow run of the configured Studio workflow for it, with
// our user id as the run's customer_user_id. ProviderRef is the workflow run id;
// ClientToken is the run's sdk_token (or, when the answer has none, a token from
// POST /sdk_token) and ClientURL the run's hosted link, when Onfido returns one. Each create
// call sends its own idempotency key derived from req.IdempotencyKey (":applicant",
// ":workflow_run", ":sdk_token"). CallbackURL is not used: Onfido's webhooks are
// registered per account. Errors: providers.ErrNotConfigured without an API token or
// workflow id; *providers.APIError for a non-2xx answer after retries.
func (p *Provider) Start(ctx context.Context, req providers.StartRequest) (providers.Session, error) {
	if p.cfg.APIToken == "" || p.cfg.WorkflowID == "" {
		return providers.Session{}, fmt.Errorf("onfido start: %w", providers.ErrNotConfigured)
	}
	key := func(step string) string {
		if req.IdempotencyKey == "" {
			return ""
		}
		return req.IdempotencyKey + ":" + step
	}
	var app applicantResponse
	if err := p.client.Do(ctx, "create applicant", http.MethodPost, "/applicants",
		applicantRequest{FirstName: placeholderFirstName, LastName: placeholderLastName}, &app, key("applicant")); err != nil {
		return providers.Session{}, err
	}
	if app.ID == "" {
		return providers.Session{}, errors.New("onfido create applicant: answer has no applicant id")
	}
	runReq := workflowRunRequest{WorkflowID: p.cfg.WorkflowID, ApplicantID: app.ID, CustomerUserID: req.UserID}
	if localeRE.MatchString(req.Locale) {
		runReq.Link = &workflowRunLink{Language: strings.ReplaceAll(req.Locale, "-", "_")}
	}
	var run workflowRun
	if err := p.client.Do(ctx, "create workflow run", http.MethodPost, "/workflow_runs", runReq, &run, key("workflow_run")); err != nil {
		return providers.Session{}, err
	}
	if run.ID == "" {
		return providers.Session{}, errors.New("onfido create workflow run: answer has no workflow run id")
	}
	s := providers.Session{ProviderRef: run.ID, ClientURL: run.Link.URL, ClientToken: run.SDKToken}
	if s.ClientToken == "" {
		var tok sdkTokenResponse
		if err := p.client.Do(ctx, "create sdk token", http.MethodPost, "/sdk_token",
			sdkTokenRequest{ApplicantID: app.ID}, &tok, key("sdk_token")); err != nil {
			return providers.Session{}, err
		}
		s.ClientToken = tok.Token
	}
	return s, nil
}

// Status reads the workflow run providerRef (GET /workflow_runs/{id}) and maps its status
// and reasons. A reference Onfido does not know as a workflow run (404) is tried as a
// Classic check (GET /checks/{id}, and GET /reports?check_id= for a "consider" result), so
// the check ids of check.* webhooks can be resolved too. Errors:
// providers.ErrNotConfigured without an API token; *providers.APIError for a non-2xx answer.
func (p *Provider) Status(ctx context.Context, providerRef string) (providers.Update, error) {
	if p.cfg.APIToken == "" {
		return providers.Update{}, fmt.Errorf("onfido status: %w", providers.ErrNotConfigured)
	}
	if !validID(providerRef) {
		return providers.Update{}, errors.New("onfido status: invalid provider reference")
	}
	var run workflowRun
	err := p.client.Do(ctx, "get workflow run", http.MethodGet, "/workflow_runs/"+url.PathEscape(providerRef), nil, &run, "")
	var apiErr *providers.APIError
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
		u, cerr := p.checkStatus(ctx, providerRef)
		var cerrAPI *providers.APIError
		if errors.As(cerr, &cerrAPI) && cerrAPI.Status == http.StatusNotFound {
			return providers.Update{}, err // neither a run nor a check: report the run lookup
		}
		return u, cerr
	}
	if err != nil {
		return providers.Update{}, err
	}
	status, codes := mapRunStatus(run.Status)
	u := providers.Update{
		ProviderRef: providerRef,
		Status:      status,
		ReasonCodes: appendCodes(codes, normalizeReasons(run.Reasons)...),
		OccurredAt:  parseTime(run.UpdatedAt),
	}
	return u, nil
}

type check struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Result string `json:"result"`
}

type reportList struct {
	Reports []report `json:"reports"`
}

func (p *Provider) checkStatus(ctx context.Context, id string) (providers.Update, error) {
	var c check
	if err := p.client.Do(ctx, "get check", http.MethodGet, "/checks/"+url.PathEscape(id), nil, &c, ""); err != nil {
		return providers.Update{}, err
	}
	var reports []report
	if c.Status == "complete" && c.Result == "consider" {
		var rl reportList
		if err := p.client.Do(ctx, "list reports", http.MethodGet, "/reports?check_id="+url.QueryEscape(id), nil, &rl, ""); err != nil {
			return providers.Update{}, err
		}
		reports = rl.Reports
	}
	status, codes := mapCheck(c.Status, c.Result, reports)
	// A check object has no completion time; OccurredAt stays zero.
	return providers.Update{ProviderRef: id, Status: status, ReasonCodes: codes}, nil
}

// Cancel returns nil: Onfido has no API to cancel a workflow run. The session is expired on
// our side only; an unfinished run is abandoned by Onfido when its interactive task times
// out (and then sends workflow_run.completed with status "abandoned").
func (p *Provider) Cancel(ctx context.Context, providerRef string) error { return nil }

// mapRunStatus maps a workflow run status (GET /workflow_runs, and object.status of
// workflow_run.* webhooks) to a canonical status and the reason code it implies.
func mapRunStatus(s string) (string, []string) {
	switch s {
	case "awaiting_input":
		return store.StatusCapturing, nil
	case "processing":
		return store.StatusSubmitted, nil
	case "awaiting_client_input":
		return store.StatusPendingReview, []string{"WORKFLOW_AWAITING_CLIENT_INPUT"}
	case "review":
		return store.StatusPendingReview, []string{"WORKFLOW_REVIEW"}
	case "approved":
		return store.StatusApproved, nil
	case "declined":
		return store.StatusRejected, []string{"WORKFLOW_DECLINED"}
	case "abandoned":
		return store.StatusExpired, []string{"WORKFLOW_ABANDONED"}
	case "error":
		// Onfido failed to run the workflow: not the person's fault, so a human looks.
		return store.StatusPendingReview, []string{"WORKFLOW_ERROR"}
	}
	return "", nil
}

// mapCheck maps a Classic check's status and result (with its reports for "consider") to a
// canonical status and reason codes.
func mapCheck(status, result string, reports []report) (string, []string) {
	switch status {
	case "in_progress":
		return store.StatusSubmitted, nil
	case "awaiting_applicant":
		return store.StatusCapturing, nil
	case "paused", "reopened":
		return store.StatusPendingReview, []string{"CHECK_" + strings.ToUpper(status)}
	case "withdrawn":
		return store.StatusExpired, []string{"CHECK_WITHDRAWN"}
	case "complete":
		switch result {
		case "clear":
			return store.StatusApproved, nil
		case "consider":
			codes := appendCodes([]string{"CHECK_CONSIDER"}, reportCodes(reports)...)
			for _, c := range codes {
				if c == "DOCUMENT_REJECTED" {
					// Onfido's document sub_result "rejected": the document could not be
					// processed (quality, unsupported type): capture again.
					return store.StatusNeedsResubmission, codes
				}
			}
			return store.StatusPendingReview, codes
		}
		return "", nil
	}
	return "", nil
}

func parseTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// validID reports whether id looks like an Onfido id: 1..128 printable ASCII characters
// without spaces or slashes.
func validID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f || c == '/' {
			return false
		}
	}
	return true
}
