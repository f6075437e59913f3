// Package verification runs identity-verification sessions: it opens them at a provider,
// records consent, issues evidence upload URLs and checks the uploads, submits, applies
// verified provider webhooks idempotently and in order, and expires sessions past their
// TTL. Which status changes are legal is decided in one place, the store's state machine
// (store.CanTransition), inside the same transaction that writes the change.
package verification

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/verdict-engine/verdict/adapters/evidence"
	"github.com/verdict-engine/verdict/adapters/providers"
	"github.com/verdict-engine/verdict/adapters/throttle"
	"github.com/verdict-engine/verdict/adapters/vault"
	"github.com/verdict-engine/verdict/store"
)

// Store is what the service needs from persistence.
type Store interface {
	store.VerificationStore
	store.AuditAppender
	// MarkSubjectEvidenceDeleted is store.SubjectKeys' method: an ended session's pointers
	// whose unsealed uploads were deleted say so.
	MarkSubjectEvidenceDeleted(ctx context.Context, userID, actor, correlationID string, items []store.DueEvidence) (int, error)
}

// Submitter is implemented by providers that must be told when a session's evidence is in
// (the sandbox decides then).
type Submitter interface {
	Submitted(ctx context.Context, providerRef string) error
}

// Config configures the service.
type Config struct {
	// TTL is how long a session may stay unfinished before it expires (default 72 h).
	TTL time.Duration
	// CallbackBase is Verdict's public base URL; a provider that takes a webhook URL per
	// session gets CallbackBase + "/v1/webhooks/" + provider.
	CallbackBase string
	// UploadURLTTL is how long an evidence upload URL stays valid (default 15 min).
	UploadURLTTL time.Duration
	// RetentionPolicy names the retention rule set new sessions fall under (default
	// "kyc-default").
	RetentionPolicy string
	// RetentionPolicies are the rule sets a client may name for a session instead
	// (CreateRequest.RetentionPolicy); empty: any name is refused but the default.
	RetentionPolicies []string
	// MaxEvidence is the most evidence items one session may hold (default 10).
	MaxEvidence int
	Now         func() time.Time
	Logger      *slog.Logger
	// Observe, when set, is told the result of every webhook delivery (provider is "unknown"
	// for a provider that is not configured, so labels stay bounded) and every status
	// change the service makes.
	ObserveWebhook    func(provider, result string)
	ObserveTransition func(provider, status string)
	// RejectedAuditEvery is how often refused webhooks of one provider and reason are
	// audited (default 1 min; negative: every one). Webhook endpoints take unauthenticated
	// requests and the audit log keeps everything forever, so a flood of forged deliveries
	// must not become a flood of audit events: the first refusal of a kind in an interval is
	// audited at once, and the next audited one counts those in between ("suppressed").
	// The metrics count every refusal.
	RejectedAuditEvery time.Duration
}

// Service is the verification subsystem. Its methods are safe for concurrent use.
type Service struct {
	cfg       Config
	store     Store
	providers map[string]providers.Provider
	evidence  *evidence.Store
	vault     *vault.Vault

	rejections *throttle.Throttle[rejectionKind] // refused webhooks by kind, for their audit
	locks      *sessionLocks                     // a session's uploads against its sealing
}

// New returns a service over st with the given providers (by Name), evidence bucket (nil:
// evidence uploads are refused) and vault (required: raw webhook bodies and evidence
// objects are kept sealed under their subject's key).
func New(cfg Config, st Store, ps []providers.Provider, ev *evidence.Store, v *vault.Vault) *Service {
	if cfg.TTL <= 0 {
		cfg.TTL = 72 * time.Hour
	}
	if cfg.UploadURLTTL <= 0 {
		cfg.UploadURLTTL = 15 * time.Minute
	}
	if cfg.RetentionPolicy == "" {
		cfg.RetentionPolicy = "kyc-default"
	}
	if cfg.MaxEvidence <= 0 {
		cfg.MaxEvidence = 10
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ObserveWebhook == nil {
		cfg.ObserveWebhook = func(string, string) {}
	}
	if cfg.ObserveTransition == nil {
		cfg.ObserveTransition = func(string, string) {}
	}
	if cfg.RejectedAuditEvery == 0 {
		cfg.RejectedAuditEvery = time.Minute
	}
	m := map[string]providers.Provider{}
	for _, p := range ps {
		m[p.Name()] = p
	}
	return &Service{cfg: cfg, store: st, providers: m, evidence: ev, vault: v,
		rejections: throttle.New[rejectionKind](cfg.RejectedAuditEvery), locks: newSessionLocks()}
}

// Providers returns the configured providers' names, sorted.
func (s *Service) Providers() []string {
	names := make([]string, 0, len(s.providers))
	for n := range s.providers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Evidence returns the evidence bucket (nil when none is configured).
func (s *Service) Evidence() *evidence.Store { return s.evidence }

// Errors the HTTP layer maps to problems.
var (
	ErrUnknownProvider     = errors.New("unknown provider")
	ErrProviderUnavailable = errors.New("provider unavailable")
	ErrConsentRequired     = errors.New("consent must be recorded before evidence is collected")
	ErrNotCapturing        = errors.New("the session is not collecting evidence")
	ErrNoEvidence          = errors.New("no evidence has been added")
	// ErrEvidenceDeleted: an evidence item's file was deleted (the subject erased, or
	// retention): the session cannot be submitted with it.
	ErrEvidenceDeleted = errors.New("evidence deleted (erasure or retention)")
	ErrNoEvidenceStore = errors.New("no evidence storage configured")
)

// InvalidError is a request field the service refuses.
type InvalidError struct{ Field, Detail string }

func (e *InvalidError) Error() string { return e.Field + ": " + e.Detail }

// CreateRequest asks for a new session.
type CreateRequest struct {
	UserID         string
	Provider       string
	Locale         string
	Consent        *store.Consent
	IdempotencyKey string
	RequestHash    string
	Actor          string
	CorrelationID  string
	// RetentionPolicy names the session's retention rule set (a jurisdiction's); empty:
	// Config.RetentionPolicy.
	RetentionPolicy string
}

// Created is the answer to Create. ClientURL and ClientToken are only set on the call that
// started the session at the provider; they are not stored.
type Created struct {
	Verification store.Verification
	Created      bool
	ClientURL    string
	ClientToken  string
}

// Create opens a session for the user at the provider. With an idempotency key, a repeated
// request returns the session the first one created.
func (s *Service) Create(ctx context.Context, r CreateRequest) (Created, error) {
	p, ok := s.providers[r.Provider]
	if !ok {
		return Created{}, fmt.Errorf("%w: %q is not configured (configured: %s)", ErrUnknownProvider, r.Provider, strings.Join(s.Providers(), ", "))
	}
	retain := s.cfg.RetentionPolicy
	if r.RetentionPolicy != "" && r.RetentionPolicy != retain {
		if !slices.Contains(s.cfg.RetentionPolicies, r.RetentionPolicy) {
			names := s.cfg.RetentionPolicies
			if !slices.Contains(names, retain) {
				names = append([]string{retain}, names...)
			}
			return Created{}, &InvalidError{"/retention_policy", "must name a policy of the retention file: " + strings.Join(names, ", ")}
		}
		retain = r.RetentionPolicy
	}
	if r.Consent != nil {
		if err := CheckConsent(r.Consent, s.cfg.Now()); err != nil {
			return Created{}, err
		}
		if r.Consent.GrantedAt.IsZero() {
			r.Consent.GrantedAt = s.cfg.Now().UTC()
		}
	}
	now := s.cfg.Now().UTC()
	id, err := uuid.NewV7()
	if err != nil {
		return Created{}, err
	}
	v, created, err := s.store.CreateVerification(ctx, store.NewVerification{
		Verification: store.Verification{
			ID: "ver_" + compact(id), UserID: r.UserID, Provider: r.Provider,
			Status: store.StatusInitiated, Consent: r.Consent, RetentionPolicy: retain,
			ReasonCodes: []string{}, ExpiresAt: now.Add(s.cfg.TTL),
		},
		IdempotencyKey: r.IdempotencyKey, RequestHash: r.RequestHash, Actor: r.Actor, CorrelationID: r.CorrelationID,
	})
	if err != nil {
		return Created{}, err
	}
	out := Created{Verification: v, Created: created}
	if v.ProviderRef != "" || store.Terminal(v.Status) {
		return out, nil
	}
	sess, err := p.Start(ctx, providers.StartRequest{
		VerificationID: v.ID, UserID: v.UserID, IdempotencyKey: "verdict-" + v.ID, Locale: r.Locale,
		CallbackURL: strings.TrimRight(s.cfg.CallbackBase, "/") + "/v1/webhooks/" + p.Name(),
	})
	if err != nil {
		s.cfg.Logger.Warn("provider start failed", "provider", p.Name(), "verification_id", v.ID, "err", err)
		return out, fmt.Errorf("%w: %s start: %w", ErrProviderUnavailable, p.Name(), err)
	}
	started, err := s.store.UpdateVerification(ctx, v.ID, store.VerificationChange{Actor: r.Actor, CorrelationID: r.CorrelationID},
		func(v *store.Verification) error {
			v.ProviderRef = sess.ProviderRef
			if v.Status == store.StatusInitiated {
				v.Status = store.StatusCapturing
			}
			return nil
		})
	if errors.Is(err, store.ErrConflict) {
		// The provider's webhook got here first and made a placeholder session with this
		// reference (for the same user, or the vendor would not have named them). That one
		// carries the provider's state: expire ours and answer with it.
		existing, gerr := s.store.VerificationByProviderRef(ctx, p.Name(), sess.ProviderRef)
		if gerr != nil || existing.UserID != v.UserID {
			return out, err
		}
		if _, uerr := s.store.UpdateVerification(ctx, v.ID, store.VerificationChange{Actor: r.Actor, CorrelationID: r.CorrelationID, Reason: "VERIFICATION_SUPERSEDED"},
			func(v *store.Verification) error {
				v.Status, v.ReasonCodes = store.StatusExpired, []string{"VERIFICATION_SUPERSEDED"}
				return nil
			}); uerr != nil {
			return out, uerr
		}
		out.Verification, out.ClientURL, out.ClientToken = existing, sess.ClientURL, sess.ClientToken
		return out, nil
	}
	if err != nil {
		return out, err
	}
	s.cfg.ObserveTransition(p.Name(), started.Status)
	out.Verification, out.ClientURL, out.ClientToken = started, sess.ClientURL, sess.ClientToken
	return out, nil
}

var (
	reasonCodeRE = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,63}$`)
	scopeRE      = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	localeRE     = regexp.MustCompile(`^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3}$`)
	hashRE       = regexp.MustCompile(`^[A-Za-z0-9:_.-]{8,128}$`)
	sha256RE     = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// CheckConsent validates a consent record: policy_hash (the hash or version id of the text
// the person agreed to), a locale, and at least one scope.
func CheckConsent(c *store.Consent, now time.Time) error {
	switch {
	case !hashRE.MatchString(c.PolicyHash):
		return &InvalidError{"/consent/policy_hash", "must be 8-128 characters of [A-Za-z0-9:_.-] (the hash or version of the consent text shown)"}
	case !localeRE.MatchString(c.Locale):
		return &InvalidError{"/consent/locale", "must be a language tag such as en-GB"}
	case len(c.Scope) == 0 || len(c.Scope) > 16:
		return &InvalidError{"/consent/scope", "must list 1 to 16 scopes"}
	}
	for i, sc := range c.Scope {
		if !scopeRE.MatchString(sc) {
			return &InvalidError{fmt.Sprintf("/consent/scope/%d", i), "scopes are lower_snake_case, such as identity_verification"}
		}
	}
	// When the person agreed, if the client says: not in the future (beyond clock skew),
	// not before anyone could have agreed to anything here.
	if g := c.GrantedAt; !g.IsZero() && (g.After(now.Add(consentClockSkew)) || g.Before(consentEpoch)) {
		return &InvalidError{"/consent/granted_at", "must be the time the person agreed: not in the future, not before 2000; leave it out to use the server's time"}
	}
	return nil
}

// consentClockSkew is how far in the future a client's granted_at may be (its clock).
const consentClockSkew = 5 * time.Minute

var consentEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// RecordConsent records consent on a session that has none yet; consent already recorded is
// kept (the first agreement stands; a new one needs a new session).
func (s *Service) RecordConsent(ctx context.Context, id string, c store.Consent, actor, corr string) (store.Verification, error) {
	if err := CheckConsent(&c, s.cfg.Now()); err != nil {
		return store.Verification{}, err
	}
	if c.GrantedAt.IsZero() {
		c.GrantedAt = s.cfg.Now().UTC()
	}
	return s.store.UpdateVerification(ctx, id, store.VerificationChange{Actor: actor, CorrelationID: corr},
		func(v *store.Verification) error {
			if store.Terminal(v.Status) {
				return &endedError{status: v.Status, refused: "it takes no consent"}
			}
			if v.Consent == nil {
				v.Consent = &c
			}
			return nil
		})
}

// EvidenceRequest declares one file the client is about to upload.
type EvidenceRequest struct {
	Kind        string
	ContentType string
	SHA256      string
	Size        int64
}

// UploadTicket tells the client where and how to upload one file.
type UploadTicket struct {
	EvidenceID  string
	Method      string
	URL         string
	ContentType string
	ExpiresAt   time.Time
}

var (
	evidenceKinds = []string{"document_front", "document_back", "passport", "selfie", "liveness_video", "proof_of_address"}
	contentTypes  = []string{"image/jpeg", "image/png", "image/heic", "application/pdf", "video/mp4"}
)

// AddEvidence records the declared files on the session (consent required) and returns a
// signed upload URL for each. The session moves to capturing.
func (s *Service) AddEvidence(ctx context.Context, id string, reqs []EvidenceRequest, actor, corr string) (store.Verification, []UploadTicket, error) {
	if s.evidence == nil {
		return store.Verification{}, nil, ErrNoEvidenceStore
	}
	if len(reqs) == 0 {
		return store.Verification{}, nil, &InvalidError{"/items", "declare at least one file"}
	}
	for i, r := range reqs {
		ptr := fmt.Sprintf("/items/%d", i)
		switch {
		case !slices.Contains(evidenceKinds, r.Kind):
			return store.Verification{}, nil, &InvalidError{ptr + "/kind", "must be one of " + strings.Join(evidenceKinds, ", ")}
		case !slices.Contains(contentTypes, r.ContentType):
			return store.Verification{}, nil, &InvalidError{ptr + "/content_type", "must be one of " + strings.Join(contentTypes, ", ")}
		case !sha256RE.MatchString(r.SHA256):
			return store.Verification{}, nil, &InvalidError{ptr + "/sha256", "must be the file's SHA-256 as 64 lowercase hex digits"}
		case r.Size <= 0 || r.Size > s.evidence.MaxSize():
			return store.Verification{}, nil, &InvalidError{ptr + "/size", fmt.Sprintf("must be between 1 and %d bytes", s.evidence.MaxSize())}
		}
	}
	now := s.cfg.Now().UTC()
	var added []store.Evidence
	v, err := s.store.UpdateVerification(ctx, id, store.VerificationChange{Actor: actor, CorrelationID: corr},
		func(v *store.Verification) error {
			if v.Consent == nil {
				return ErrConsentRequired
			}
			switch v.Status {
			case store.StatusInitiated, store.StatusCapturing, store.StatusNeedsResubmission:
			default:
				return fmt.Errorf("%w (status %s)", ErrNotCapturing, v.Status)
			}
			if len(v.Evidence)+len(reqs) > s.cfg.MaxEvidence {
				return &InvalidError{"/items", fmt.Sprintf("a session holds at most %d files", s.cfg.MaxEvidence)}
			}
			added = added[:0]
			for _, r := range reqs {
				eid, err := uuid.NewV7()
				if err != nil {
					return err
				}
				e := store.Evidence{
					ID: "evd_" + compact(eid), Kind: r.Kind, SHA256: r.SHA256,
					ContentType: r.ContentType, Size: r.Size, State: store.EvidencePending, CreatedAt: now,
				}
				e.BlobKey = "evidence/" + v.ID + "/" + e.ID
				added = append(added, e)
			}
			v.Evidence = append(v.Evidence, added...)
			v.Status = store.StatusCapturing
			return nil
		})
	if err != nil {
		return store.Verification{}, nil, err
	}
	tickets := make([]UploadTicket, 0, len(added))
	for _, e := range added {
		u, err := s.evidence.UploadURL(ctx, e.BlobKey, e.ContentType, s.cfg.UploadURLTTL)
		if err != nil {
			return store.Verification{}, nil, err
		}
		tickets = append(tickets, UploadTicket{EvidenceID: e.ID, Method: "PUT", URL: u, ContentType: e.ContentType, ExpiresAt: now.Add(s.cfg.UploadURLTTL)})
	}
	return v, tickets, nil
}

// EvidenceError reports evidence that is missing or does not match its declaration.
type EvidenceError struct {
	EvidenceID string
	Err        error
}

func (e *EvidenceError) Error() string { return "evidence " + e.EvidenceID + ": " + e.Err.Error() }
func (e *EvidenceError) Unwrap() error { return e.Err }

// Submit checks every declared file against its hash in blob storage, marks them
// uploaded, moves the session to submitted and tells the provider when it wants to know.
func (s *Service) Submit(ctx context.Context, id, actor, corr string) (store.Verification, error) {
	if s.evidence == nil {
		return store.Verification{}, ErrNoEvidenceStore
	}
	v, err := s.seal(ctx, id, actor, corr)
	if err != nil {
		return store.Verification{}, err
	}
	s.cfg.ObserveTransition(v.Provider, v.Status)
	if sub, ok := s.providers[v.Provider].(Submitter); ok && v.ProviderRef != "" {
		if err := sub.Submitted(ctx, v.ProviderRef); err != nil {
			s.cfg.Logger.Warn("provider submit notification failed", "provider", v.Provider, "verification_id", v.ID, "err", err)
		}
	}
	return v, nil
}

// seal checks and seals the session's pending files and moves it to submitted, holding the
// session's lock so that no upload it receives (ReceiveUpload) lands between a file's check
// and the state change that closes its URL.
func (s *Service) seal(ctx context.Context, id, actor, corr string) (store.Verification, error) {
	defer s.locks.lock(id)()
	cur, err := s.store.GetVerification(ctx, id)
	if err != nil {
		return store.Verification{}, err
	}
	if len(cur.Evidence) == 0 {
		return store.Verification{}, ErrNoEvidence
	}
	checked := map[string]bool{}
	for _, e := range cur.Evidence {
		switch e.State {
		case store.EvidenceUploaded:
			continue
		case store.EvidenceDeleted:
			// Never read back: whatever is under its key now was not uploaded through
			// Verdict before the deletion (a bucket taking uploads directly).
			return store.Verification{}, &EvidenceError{EvidenceID: e.ID, Err: ErrEvidenceDeleted}
		}
		ad := EvidenceAD(cur.ID, e.ID)
		seal := func(b []byte) ([]byte, error) { return s.vault.Seal(ctx, cur.UserID, ad, b) }
		open := func(b []byte) ([]byte, error) { return s.vault.Open(ctx, cur.UserID, ad, b) }
		if err := s.evidence.CheckAndSeal(ctx, e.BlobKey, e.SHA256, e.Size, seal, open); err != nil {
			return store.Verification{}, &EvidenceError{EvidenceID: e.ID, Err: err}
		}
		checked[e.ID] = true
	}
	now := s.cfg.Now().UTC()
	v, err := s.store.UpdateVerification(ctx, id, store.VerificationChange{Actor: actor, CorrelationID: corr},
		func(v *store.Verification) error {
			if v.Status != store.StatusCapturing {
				return fmt.Errorf("%w (status %s)", ErrNotCapturing, v.Status)
			}
			for i := range v.Evidence {
				e := &v.Evidence[i]
				if e.State == store.EvidenceUploaded {
					continue
				}
				if e.State == store.EvidenceDeleted {
					return &EvidenceError{EvidenceID: e.ID, Err: ErrEvidenceDeleted}
				}
				if !checked[e.ID] {
					return &EvidenceError{EvidenceID: e.ID, Err: evidence.ErrMissing}
				}
				e.State, e.UploadedAt = store.EvidenceUploaded, now
			}
			v.Status = store.StatusSubmitted
			return nil
		})
	if errors.Is(err, ErrEvidenceDeleted) {
		s.dropSealedAfterDeletion(ctx, cur.ID, checked)
	}
	return v, err
}

// dropSealedAfterDeletion deletes what seal wrote for pointers that an erasure (or
// retention) marked deleted while their files were being sealed: the erasure deleted the
// object before the sealed copy was written, and that copy, under the subject's new key,
// would outlive a pointer that says it is gone.
func (s *Service) dropSealedAfterDeletion(ctx context.Context, id string, checked map[string]bool) {
	v, err := s.store.GetVerification(ctx, id)
	if err != nil {
		s.cfg.Logger.Warn("reading a session after an erasure raced its submission failed", "verification_id", id, "err", err)
		return
	}
	for _, e := range v.Evidence {
		if e.State != store.EvidenceDeleted || !checked[e.ID] {
			continue
		}
		if err := s.evidence.Delete(ctx, e.BlobKey); err != nil {
			s.cfg.Logger.Warn("deleting a file sealed after its erasure failed", "verification_id", id, "evidence_id", e.ID, "err", err)
		}
	}
}

// Get returns a session.
func (s *Service) Get(ctx context.Context, id string) (store.Verification, error) {
	return s.store.GetVerification(ctx, id)
}

// List returns a user's sessions, newest first.
func (s *Service) List(ctx context.Context, userID string, limit int) ([]store.Verification, error) {
	return s.store.ListVerifications(ctx, userID, limit)
}

// RunExpiry expires sessions past their TTL every interval until ctx ends.
func (s *Service) RunExpiry(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		expired, err := s.store.ExpireVerifications(ctx, s.cfg.Now(), 500)
		switch {
		case err != nil && ctx.Err() == nil:
			s.cfg.Logger.Warn("expiring verification sessions failed", "err", err)
		case len(expired) > 0:
			s.cfg.Logger.Info("verification sessions expired", "count", len(expired))
			for _, v := range expired {
				s.cfg.ObserveTransition("any", store.StatusExpired)
				s.dropUnsealed(ctx, v, "system", "")
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func normalizeReasons(codes []string) []string {
	out := make([]string, 0, len(codes))
	for _, c := range codes {
		if reasonCodeRE.MatchString(c) && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// Cancel ends an unfinished session: the provider is told (where it can cancel) and the
// session is expired with reason VERIFICATION_CANCELLED. A final session cannot be
// cancelled.
func (s *Service) Cancel(ctx context.Context, id, actor, corr string) (store.Verification, error) {
	cur, err := s.store.GetVerification(ctx, id)
	if err != nil {
		return store.Verification{}, err
	}
	if store.Terminal(cur.Status) {
		return store.Verification{}, &endedError{status: cur.Status, refused: "there is nothing to cancel"}
	}
	if p, ok := s.providers[cur.Provider]; ok && cur.ProviderRef != "" {
		if err := p.Cancel(ctx, cur.ProviderRef); err != nil {
			return store.Verification{}, fmt.Errorf("%w: %s cancel: %w", ErrProviderUnavailable, p.Name(), err)
		}
	}
	// Held against this process's uploads, so none lands between the change and the
	// deletion of the session's unsealed files.
	defer s.locks.lock(id)()
	v, err := s.store.UpdateVerification(ctx, id, store.VerificationChange{Actor: actor, CorrelationID: corr, Reason: "VERIFICATION_CANCELLED"},
		func(v *store.Verification) error {
			v.Status = store.StatusExpired
			v.ReasonCodes = []string{"VERIFICATION_CANCELLED"}
			return nil
		})
	if err != nil {
		return store.Verification{}, err
	}
	s.cfg.ObserveTransition(v.Provider, v.Status)
	return s.dropUnsealed(ctx, v, actor, corr), nil
}

// dropUnsealed deletes the objects of a session that ended before submission and still
// holds files uploaded in plaintext (pending: sealed only at submit), which would otherwise
// stay readable in the bucket until raw_evidence retention, years later. No upload is taken
// for an ended session, so nothing comes after. A failure is logged; retention and erasure
// still reach the objects through their pointers. It returns v with the pointers it marked
// deleted saying so, as a reload would: the cancel answer said "pending" for a file it had
// just deleted.
func (s *Service) dropUnsealed(ctx context.Context, v store.Verification, actor, corr string) store.Verification {
	if s.evidence == nil {
		return v
	}
	var deleted []store.DueEvidence
	for _, e := range v.Evidence {
		if e.State != store.EvidencePending || e.BlobKey == "" {
			continue
		}
		if err := s.evidence.Delete(ctx, e.BlobKey); err != nil {
			s.cfg.Logger.Warn("deleting an unsealed upload of an ended session failed", "verification_id", v.ID, "evidence_id", e.ID, "err", err)
			continue
		}
		deleted = append(deleted, store.DueEvidence{VerificationID: v.ID, EvidenceID: e.ID, BlobKey: e.BlobKey})
	}
	if len(deleted) == 0 {
		return v
	}
	// The pointers say what became of their objects, so that retention and erasure do not
	// count them as still held.
	if _, err := s.store.MarkSubjectEvidenceDeleted(ctx, v.UserID, actor, corr, deleted); err != nil {
		s.cfg.Logger.Warn("marking the deleted uploads of an ended session failed", "verification_id", v.ID, "err", err)
		return v
	}
	v.Evidence = slices.Clone(v.Evidence)
	for i, e := range v.Evidence {
		if slices.ContainsFunc(deleted, func(d store.DueEvidence) bool { return d.EvidenceID == e.ID }) {
			v.Evidence[i].State = store.EvidenceDeleted
		}
	}
	return v
}

// endedError refuses a change to a session that has ended. It is an ErrNotCapturing
// (409 invalid_state) whose message says what was refused: a cancel or a consent on an
// approved session was answered "the session is not collecting evidence", which is about
// neither.
type endedError struct{ status, refused string }

func (e *endedError) Error() string {
	return fmt.Sprintf("the session has ended (status %s): %s", e.status, e.refused)
}

func (e *endedError) Unwrap() error { return ErrNotCapturing }

// EvidenceAD is the associated data of an evidence object sealed under its subject's key.
func EvidenceAD(verificationID, evidenceID string) vault.AD {
	return vault.AD{Record: "evidence", ID: verificationID + "/" + evidenceID, Field: "object"}
}
