// Package sandbox is a provider that needs no vendor account: it opens sessions locally,
// decides them by itself when they are submitted, and delivers its decision as a signed
// webhook to Verdict's own /v1/webhooks/sandbox, so the whole flow (session, evidence,
// webhook, decision) can be tried with curl.
//
// Its webhooks follow the Standard Webhooks specification: headers webhook-id,
// webhook-timestamp and webhook-signature ("v1,<base64 HMAC-SHA256 of id.timestamp.body>"),
// a 5-minute timestamp tolerance, and retries with backoff until the receiver answers 2xx.
//
// The outcome is chosen from the user id, so each path can be tried on purpose: an id
// containing "reject" is rejected, "review" goes to pending_review, "resubmit" asks for a
// resubmission, anything else is approved.
package sandbox

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/verdict-engine/verdict/adapters/providers"
	"github.com/verdict-engine/verdict/store"
)

// Name is the provider's name.
const Name = "sandbox"

// Tolerance is how far a webhook's timestamp may be from the receiver's clock.
const Tolerance = 5 * time.Minute

// Config configures the sandbox.
type Config struct {
	// Secrets sign (the first) and verify (any) webhooks. Empty: a random secret is made
	// for this process.
	Secrets providers.Secrets
	// Delay between a submission and the decision webhook (default 1 s).
	Delay time.Duration
	// Retries of a webhook delivery that did not get a 2xx (default 5), with backoff
	// starting at 500 ms.
	Retries    int
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// Provider is the sandbox provider. It implements providers.Provider.
type Provider struct {
	cfg Config

	mu       sync.Mutex
	sessions map[string]*session
	wg       sync.WaitGroup
	closed   chan struct{}
	once     sync.Once
}

type session struct {
	ref, userID, callback, status string
	updated                       time.Time
}

// New returns a sandbox provider.
func New(c Config) *Provider {
	if len(c.Secrets) == 0 {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		c.Secrets = providers.Secrets{b}
	}
	if c.Delay <= 0 {
		c.Delay = time.Second
	}
	if c.Retries <= 0 {
		c.Retries = 5
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return &Provider{cfg: c, sessions: map[string]*session{}, closed: make(chan struct{})}
}

// Name implements providers.Provider.
func (p *Provider) Name() string { return Name }

// Start implements providers.Provider: it opens a session with a random reference. The
// same idempotency key returns the same session.
func (p *Provider) Start(_ context.Context, req providers.StartRequest) (providers.Session, error) {
	if req.UserID == "" || req.CallbackURL == "" {
		return providers.Session{}, errors.New("sandbox start: user id and callback URL are required")
	}
	ref := "sbx_" + randomHex(12)
	if req.IdempotencyKey != "" {
		ref = "sbx_" + hex.EncodeToString(hmacSHA256([]byte("sandbox-ref"), []byte(req.IdempotencyKey)))[:24]
	}
	p.mu.Lock()
	if _, ok := p.sessions[ref]; !ok {
		p.sessions[ref] = &session{ref: ref, userID: req.UserID, callback: req.CallbackURL, status: store.StatusCapturing, updated: time.Now()}
	}
	p.mu.Unlock()
	return providers.Session{ProviderRef: ref, ClientToken: "sbx_tok_" + randomHex(16)}, nil
}

// Status implements providers.Provider.
func (p *Provider) Status(_ context.Context, ref string) (providers.Update, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.sessions[ref]
	if !ok {
		return providers.Update{}, &providers.APIError{Provider: Name, Op: "status", Status: http.StatusNotFound}
	}
	return providers.Update{ProviderRef: ref, Status: s.status, OccurredAt: s.updated}, nil
}

// Cancel implements providers.Provider: the session is forgotten and no webhook follows.
func (p *Provider) Cancel(_ context.Context, ref string) error {
	p.mu.Lock()
	delete(p.sessions, ref)
	p.mu.Unlock()
	return nil
}

// Submitted tells the sandbox that the session's evidence is in: after the configured
// delay it decides and delivers a signed webhook to the session's callback URL.
func (p *Provider) Submitted(_ context.Context, ref string) error {
	p.mu.Lock()
	s, ok := p.sessions[ref]
	if !ok {
		p.mu.Unlock()
		return &providers.APIError{Provider: Name, Op: "submit", Status: http.StatusNotFound}
	}
	s.status = store.StatusSubmitted
	userID, callback := s.userID, s.callback
	p.mu.Unlock()

	status, reasons, score := Outcome(userID)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		select {
		case <-time.After(p.cfg.Delay):
		case <-p.closed:
			return
		}
		p.mu.Lock()
		if s, ok := p.sessions[ref]; ok {
			s.status, s.updated = status, time.Now()
		}
		p.mu.Unlock()
		body, err := json.Marshal(payload{
			Type:      "verification.decided",
			Timestamp: time.Now().UTC().Format(time.RFC3339Nano),
			Data: data{
				SessionID: ref, UserID: userID, Status: status, Score: score, ReasonCodes: reasons,
			},
		})
		if err != nil {
			return
		}
		p.deliver(callback, body)
	}()
	return nil
}

// Outcome is the sandbox's decision for a user id.
func Outcome(userID string) (status string, reasons []string, score float64) {
	id := strings.ToLower(userID)
	switch {
	case strings.Contains(id, "reject"):
		return store.StatusRejected, []string{"DOCUMENT_FORGERY"}, 5
	case strings.Contains(id, "review"):
		return store.StatusPendingReview, []string{"DOCUMENT_QUALITY_LOW"}, 55
	case strings.Contains(id, "resubmit"):
		return store.StatusNeedsResubmission, []string{"DOCUMENT_UNREADABLE"}, 30
	}
	return store.StatusApproved, []string{}, 96
}

func (p *Provider) deliver(url string, body []byte) {
	id := "msg_" + randomHex(12)
	backoff := 500 * time.Millisecond
	for attempt := 0; attempt <= p.cfg.Retries; attempt++ {
		if attempt > 0 {
			select {
			case <-time.After(backoff):
			case <-p.closed:
				return
			}
			backoff *= 2
		}
		ts := time.Now().Unix()
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			p.cfg.Logger.Warn("sandbox webhook: bad callback URL", "err", err)
			return
		}
		req.Header.Set("Content-Type", "application/json")
		for k, v := range Sign(p.cfg.Secrets[0], id, ts, body) {
			req.Header.Set(k, v)
		}
		resp, err := p.cfg.HTTPClient.Do(req)
		if err != nil {
			p.cfg.Logger.Warn("sandbox webhook delivery failed", "webhook_id", id, "attempt", attempt+1, "err", err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return
		}
		p.cfg.Logger.Warn("sandbox webhook refused", "webhook_id", id, "attempt", attempt+1, "status", resp.StatusCode)
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusNotFound {
			return
		}
	}
}

// Close stops pending deliveries and waits for them.
func (p *Provider) Close() {
	p.once.Do(func() { close(p.closed) })
	p.wg.Wait()
}

// Sign returns the Standard Webhooks headers for a delivery.
func Sign(secret []byte, id string, ts int64, body []byte) map[string]string {
	t := strconv.FormatInt(ts, 10)
	mac := hmacSHA256(secret, signedContent(id, t, body))
	return map[string]string{
		"webhook-id":        id,
		"webhook-timestamp": t,
		"webhook-signature": "v1," + base64.StdEncoding.EncodeToString(mac),
	}
}

func signedContent(id, ts string, body []byte) []byte {
	b := make([]byte, 0, len(id)+len(ts)+len(body)+2)
	b = append(b, id...)
	b = append(b, '.')
	b = append(b, ts...)
	b = append(b, '.')
	return append(b, body...)
}

// VerifyWebhook implements providers.Provider with the Standard Webhooks scheme.
func (p *Provider) VerifyWebhook(h providers.Header, body []byte, now time.Time) (providers.Event, error) {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return providers.Event{}, fmt.Errorf("sandbox webhook: %w", providers.ErrMissingSignature)
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return providers.Event{}, fmt.Errorf("sandbox webhook: timestamp is not a number: %w", providers.ErrBadSignature)
	}
	if d := now.Sub(time.Unix(t, 0)); d > Tolerance || d < -Tolerance {
		return providers.Event{}, fmt.Errorf("sandbox webhook: %w", providers.ErrStaleTimestamp)
	}
	msg := signedContent(id, ts, body)
	ok := false
	for _, sig := range strings.Fields(sigs) {
		v, b64, found := strings.Cut(sig, ",")
		if !found || v != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			continue
		}
		for _, secret := range p.cfg.Secrets {
			if hmac.Equal(hmacSHA256(secret, msg), got) {
				ok = true
			}
		}
	}
	if !ok {
		return providers.Event{}, fmt.Errorf("sandbox webhook: %w", providers.ErrBadSignature)
	}
	return ParsePayload(id, body)
}

type payload struct {
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"`
	Data      data   `json:"data"`
}

type data struct {
	SessionID   string   `json:"session_id"`
	UserID      string   `json:"user_id"`
	Status      string   `json:"status"`
	Score       float64  `json:"score"`
	ReasonCodes []string `json:"reason_codes"`
}

// ParsePayload parses a sandbox webhook body (already verified) into an Event.
func ParsePayload(id string, body []byte) (providers.Event, error) {
	var pl payload
	if err := json.Unmarshal(body, &pl); err != nil {
		return providers.Event{}, fmt.Errorf("sandbox webhook: %w: %v", providers.ErrMalformedPayload, err)
	}
	if pl.Type != "verification.decided" || pl.Data.SessionID == "" {
		return providers.Event{}, fmt.Errorf("sandbox webhook: %w: want type verification.decided with data.session_id", providers.ErrMalformedPayload)
	}
	at, err := time.Parse(time.RFC3339Nano, pl.Timestamp)
	if err != nil {
		return providers.Event{}, fmt.Errorf("sandbox webhook: %w: timestamp: %v", providers.ErrMalformedPayload, err)
	}
	if !store.ValidStatus(pl.Data.Status) {
		return providers.Event{}, fmt.Errorf("sandbox webhook: %w: unknown status", providers.ErrMalformedPayload)
	}
	score := pl.Data.Score
	return providers.Event{
		ID: id, Type: pl.Type, ProviderRef: pl.Data.SessionID, UserID: pl.Data.UserID,
		Status: pl.Data.Status, Score: &score, ReasonCodes: pl.Data.ReasonCodes, OccurredAt: at,
	}, nil
}

func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
