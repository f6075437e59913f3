package verification

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"

	"github.com/verdict-engine/verdict/adapters/providers"
	"github.com/verdict-engine/verdict/adapters/vault"
	"github.com/verdict-engine/verdict/store"
)

// Webhook outcomes, as metric label values and in WebhookResult.Reason / WebhookError.Reason.
const (
	WebhookApplied             = "applied"
	WebhookDuplicate           = "duplicate"            // the event was applied before
	WebhookStale               = "stale"                // older than the session's last applied event
	WebhookNotApplicable       = "not_applicable"       // the session cannot move there (final, or backwards)
	WebhookIgnored             = "ignored"              // a valid event that changes no status
	WebhookUnknownProvider     = "unknown_provider"     // 404
	WebhookMissingSignature    = "missing_signature"    // 401
	WebhookBadSignature        = "bad_signature"        // 401
	WebhookStaleTimestamp      = "stale_timestamp"      // 401
	WebhookMalformedPayload    = "malformed_payload"    // 400
	WebhookUnknownSession      = "unknown_session"      // 404: the vendor retries; our record may not be written yet
	WebhookProviderUnavailable = "provider_unavailable" // 502: fetching the result failed; the vendor retries
)

// WebhookResult is the answer to a delivery that was authentic.
type WebhookResult struct {
	Applied        bool
	Reason         string // one of the Webhook* outcomes
	VerificationID string
	Status         string // the session's status after the delivery
}

// WebhookError is a refused delivery. Nothing was changed; authentication and payload
// failures are audited as webhook.rejected events, at most one per provider and reason per
// Config.RejectedAuditEvery (the next one counts those in between).
type WebhookError struct {
	Reason string
	Err    error
}

func (e *WebhookError) Error() string { return "webhook " + e.Reason + ": " + e.Err.Error() }
func (e *WebhookError) Unwrap() error { return e.Err }

// HandleWebhook verifies and applies one delivery of a provider's webhook: the signature
// first (nothing of the body is trusted before), then the event is applied to its session
// once, in order of the vendor's own event time, with the encrypted raw body stored beside
// it. An event for an unknown session that names our user creates the session as a
// placeholder.
func (s *Service) HandleWebhook(ctx context.Context, provider string, h providers.Header, body []byte, corr string) (WebhookResult, error) {
	p, ok := s.providers[provider]
	if !ok {
		return WebhookResult{}, s.reject(ctx, "unknown", WebhookUnknownProvider, body, corr, fmt.Errorf("%w: %q", ErrUnknownProvider, provider))
	}
	provider = p.Name() // the configured name, not the caller's string, labels metrics and records
	now := s.cfg.Now()
	ev, err := p.VerifyWebhook(h, body, now)
	if err != nil {
		reason := WebhookBadSignature
		switch {
		case errors.Is(err, providers.ErrMissingSignature):
			reason = WebhookMissingSignature
		case errors.Is(err, providers.ErrStaleTimestamp):
			reason = WebhookStaleTimestamp
		case errors.Is(err, providers.ErrMalformedPayload):
			reason = WebhookMalformedPayload
		case errors.Is(err, providers.ErrBadSignature):
		default:
			// An adapter error outside the contract: refuse, as unauthenticated.
		}
		return WebhookResult{}, s.reject(ctx, provider, reason, body, corr, err)
	}
	if ev.ID == "" {
		return WebhookResult{}, s.reject(ctx, provider, WebhookMalformedPayload, body, corr, errors.New("event without id"))
	}
	if ev.Status == "" && !ev.Fetch {
		// Authentic, and about nothing a session records (Persona's account.* or
		// report.* events, which name no inquiry): acknowledged so the provider does not
		// retry it.
		s.cfg.ObserveWebhook(provider, WebhookIgnored)
		return WebhookResult{Reason: WebhookIgnored}, nil
	}
	if ev.ProviderRef == "" {
		return WebhookResult{}, s.reject(ctx, provider, WebhookMalformedPayload, body, corr, errors.New("event without a session reference"))
	}
	if ev.Fetch {
		u, err := p.Status(ctx, ev.ProviderRef)
		if err != nil {
			s.cfg.ObserveWebhook(provider, WebhookProviderUnavailable)
			return WebhookResult{}, &WebhookError{Reason: WebhookProviderUnavailable, Err: err}
		}
		ev.Status, ev.Score, ev.ReasonCodes = u.Status, u.Score, u.ReasonCodes
		if !u.OccurredAt.IsZero() {
			ev.OccurredAt = u.OccurredAt
		}
	}
	if ev.Status == "" {
		s.cfg.ObserveWebhook(provider, WebhookIgnored)
		return WebhookResult{Reason: WebhookIgnored}, nil
	}
	if !store.ValidStatus(ev.Status) {
		return WebhookResult{}, s.reject(ctx, provider, WebhookMalformedPayload, body, corr, fmt.Errorf("adapter mapped to unknown status %q", ev.Status))
	}

	v, err := s.store.VerificationByProviderRef(ctx, provider, ev.ProviderRef)
	if errors.Is(err, store.ErrNotFound) {
		if ev.UserID == "" {
			s.cfg.ObserveWebhook(provider, WebhookUnknownSession)
			return WebhookResult{}, &WebhookError{Reason: WebhookUnknownSession, Err: errors.New("no session has this provider reference yet")}
		}
		id, err := uuid.NewV7()
		if err != nil {
			return WebhookResult{}, err
		}
		v, _, err = s.store.CreateVerification(ctx, store.NewVerification{
			Verification: store.Verification{
				ID: "ver_" + compact(id), UserID: ev.UserID, Provider: provider, ProviderRef: ev.ProviderRef,
				Status: store.StatusInitiated, ReasonCodes: []string{}, RetentionPolicy: s.cfg.RetentionPolicy,
				ExpiresAt: now.UTC().Add(s.cfg.TTL),
			},
			Actor: provider, CorrelationID: corr,
		})
		if err != nil {
			return WebhookResult{}, err
		}
	} else if err != nil {
		return WebhookResult{}, err
	}

	pid, err := uuid.NewV7()
	if err != nil {
		return WebhookResult{}, err
	}
	payloadID := "whp_" + compact(pid)
	sealed, err := s.vault.Seal(ctx, v.UserID, PayloadAD(payloadID), body)
	if err != nil {
		return WebhookResult{}, err
	}
	ch := store.VerificationChange{
		Actor: provider, CorrelationID: corr, EventKey: provider + ":" + ev.ID,
		Payload: &store.RawPayload{ID: payloadID, Provider: provider, ReceivedAt: now.UTC(), Ciphertext: sealed},
	}
	var skip string
	updated, err := s.store.UpdateVerification(ctx, v.ID, ch, func(v *store.Verification) error {
		skip = ""
		switch {
		case !ev.OccurredAt.IsZero() && !v.LastEventAt.IsZero() && ev.OccurredAt.Before(v.LastEventAt):
			skip = WebhookStale
		case store.Terminal(v.Status) || !store.CanTransition(v.Status, ev.Status) || backwards(v.Status, ev.Status):
			// A final session (approved, rejected, expired) takes no event, not even one
			// that repeats its status with another score or reasons.
			skip = WebhookNotApplicable
		}
		if skip != "" {
			return errSkip
		}
		changed := v.Status != ev.Status
		v.Status = ev.Status
		if ev.Score != nil && !math.IsNaN(*ev.Score) && !math.IsInf(*ev.Score, 0) {
			v.Score = math.Max(0, math.Min(100, *ev.Score))
		}
		switch {
		case ev.ReasonCodes != nil:
			v.ReasonCodes = normalizeReasons(ev.ReasonCodes)
		case changed:
			// Reasons describe the result they came with: an approval after a review or a
			// rejection for resubmission must not carry that result's reasons into
			// policies. An event that repeats the status without reasons keeps them.
			v.ReasonCodes = []string{}
		}
		if !ev.OccurredAt.IsZero() {
			v.LastEventAt = ev.OccurredAt.UTC().Truncate(time.Microsecond)
		}
		return nil
	})
	switch {
	case errors.Is(err, store.ErrAlreadyApplied):
		s.cfg.ObserveWebhook(provider, WebhookDuplicate)
		cur, _ := s.store.GetVerification(ctx, v.ID)
		return WebhookResult{Reason: WebhookDuplicate, VerificationID: v.ID, Status: cur.Status}, nil
	case errors.Is(err, errSkip):
		s.cfg.ObserveWebhook(provider, skip)
		cur, _ := s.store.GetVerification(ctx, v.ID)
		return WebhookResult{Reason: skip, VerificationID: v.ID, Status: cur.Status}, nil
	case err != nil:
		return WebhookResult{}, err
	}
	s.cfg.ObserveWebhook(provider, WebhookApplied)
	s.cfg.ObserveTransition(provider, updated.Status)
	return WebhookResult{Applied: true, Reason: WebhookApplied, VerificationID: updated.ID, Status: updated.Status}, nil
}

var errSkip = errors.New("event not applied")

// backwards reports a move the state machine allows but an out-of-order delivery would
// cause: back to capturing or submitted from a later stage. Only a request for
// resubmission reopens capture.
func backwards(from, to string) bool {
	rank := map[string]int{
		store.StatusInitiated: 0, store.StatusCapturing: 1, store.StatusSubmitted: 2, store.StatusPendingReview: 3,
	}
	rf, okf := rank[from]
	rt, okt := rank[to]
	return okf && okt && rt < rf
}

func (s *Service) reject(ctx context.Context, provider, reason string, body []byte, corr string, cause error) error {
	s.cfg.ObserveWebhook(provider, reason)
	now := s.cfg.Now().UTC()
	kind := rejectionKind{provider, reason} // provider is "unknown" for one not configured
	if audit, suppressed := s.rejections.Allow(kind, now); audit {
		ev, err := store.WebhookRejectionsEvent(provider, reason, body, suppressed, corr, now)
		if err == nil {
			err = s.store.AppendAudit(ctx, ev)
		}
		if err != nil {
			// Counted in the next event of the kind, an interval later: not at once, which
			// with the store down would try, and log, on every forged delivery.
			s.rejections.Hold(kind, suppressed+1)
			s.cfg.Logger.Warn("could not audit a rejected webhook", "provider", provider, "reason", reason, "err", err)
		}
	}
	return &WebhookError{Reason: reason, Err: cause}
}

// rejectionKind is what refused webhooks are counted by: few and fixed (the configured
// providers and "unknown", the Webhook* reasons).
type rejectionKind struct{ provider, reason string }

func compact(id uuid.UUID) string {
	b := make([]byte, 0, 32)
	for _, c := range id.String() {
		if c != '-' {
			b = append(b, byte(c))
		}
	}
	return string(b)
}

// PayloadAD is the associated data of a raw webhook payload sealed under its subject's key.
func PayloadAD(payloadID string) vault.AD {
	return vault.AD{Record: "raw_payload", ID: payloadID, Field: "body"}
}
