package http

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/verdict-engine/verdict/adapters/evidence"
	"github.com/verdict-engine/verdict/adapters/verification"
	"github.com/verdict-engine/verdict/store"
)

// Problem codes of the verification API.
const (
	CodeUnknownProvider     = "unknown_provider"
	CodeProviderUnavailable = "provider_unavailable"
	CodeConsentRequired     = "consent_required"
	CodeInvalidState        = "invalid_state"
	CodeEvidenceMissing     = "evidence_missing"
	CodeEvidenceMismatch    = "evidence_mismatch"
	CodeUploadURLInvalid    = "upload_url_invalid"
	CodeWebhookRejected     = "webhook_rejected"
	CodeUnknownSession      = "unknown_session"
	CodeReviewClaimed       = "review_claimed"
)

type consentJSON struct {
	PolicyHash string    `json:"policy_hash"`
	Locale     string    `json:"locale"`
	Scope      []string  `json:"scope"`
	GrantedAt  time.Time `json:"granted_at,omitzero"`
}

type evidenceJSON struct {
	ID          string    `json:"id"`
	Kind        string    `json:"kind"`
	SHA256      string    `json:"sha256"`
	ContentType string    `json:"content_type"`
	Size        int64     `json:"size"`
	State       string    `json:"state"`
	CreatedAt   time.Time `json:"created_at"`
	UploadedAt  time.Time `json:"uploaded_at,omitzero"`
}

type verificationJSON struct {
	VerificationID  string         `json:"verification_id"`
	UserID          string         `json:"user_id"`
	Provider        string         `json:"provider"`
	ProviderRef     string         `json:"provider_ref"`
	Status          string         `json:"status"`
	Score           float64        `json:"score"`
	ReasonCodes     []string       `json:"reason_codes"`
	Evidence        []evidenceJSON `json:"evidence"`
	Consent         *consentJSON   `json:"consent"`
	RetentionPolicy string         `json:"retention_policy"`
	CreatedAt       time.Time      `json:"created_at"`
	UpdatedAt       time.Time      `json:"updated_at"`
	ExpiresAt       time.Time      `json:"expires_at,omitzero"`
	LastEventAt     time.Time      `json:"last_event_at,omitzero"`
}

func toVerificationJSON(v store.Verification) verificationJSON {
	out := verificationJSON{
		VerificationID: v.ID, UserID: v.UserID, Provider: v.Provider, ProviderRef: v.ProviderRef, Status: v.Status,
		Score: v.Score, ReasonCodes: v.ReasonCodes, Evidence: []evidenceJSON{}, RetentionPolicy: v.RetentionPolicy,
		CreatedAt: v.CreatedAt, UpdatedAt: v.UpdatedAt, ExpiresAt: v.ExpiresAt, LastEventAt: v.LastEventAt,
	}
	if out.ReasonCodes == nil {
		out.ReasonCodes = []string{}
	}
	for _, e := range v.Evidence {
		out.Evidence = append(out.Evidence, evidenceJSON{ID: e.ID, Kind: e.Kind, SHA256: e.SHA256, ContentType: e.ContentType,
			Size: e.Size, State: e.State, CreatedAt: e.CreatedAt, UploadedAt: e.UploadedAt})
	}
	if c := v.Consent; c != nil {
		out.Consent = &consentJSON{PolicyHash: c.PolicyHash, Locale: c.Locale, Scope: c.Scope, GrantedAt: c.GrantedAt}
	}
	return out
}

// decodeStrict decodes a JSON object body into dst, refusing unknown fields.
func decodeStrict(c *fiber.Ctx, dst any) error {
	if len(c.Body()) == 0 {
		return problemf(fiber.StatusBadRequest, CodeMalformedJSON, "the body is empty")
	}
	dec := json.NewDecoder(bytes.NewReader(c.Body()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return problemf(fiber.StatusBadRequest, CodeMalformedJSON, "malformed JSON at byte %d", se.Offset)
		case errors.As(err, &te) && te.Field != "":
			detail := "must be " + jsonKind(te.Type.Kind().String())
			switch te.Type.Kind() {
			case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint64, reflect.Uint32:
				if strings.HasPrefix(te.Value, "number") {
					detail = "must be an integer"
				}
			}
			return &apiError{status: fiber.StatusBadRequest, code: CodeInvalidRequest, detail: "the request has invalid fields",
				fields: []FieldError{{Pointer: "/" + jsonPointerPath(te.Field), Detail: detail}}}
		}
		return problemf(fiber.StatusBadRequest, CodeMalformedJSON, "the body is not a valid JSON object of the documented shape: %s", safeJSONError(err))
	}
	if dec.More() {
		return problemf(fiber.StatusBadRequest, CodeMalformedJSON, "the body holds more than one JSON value")
	}
	return nil
}

func jsonPointerPath(field string) string {
	b := []byte(field)
	for i := range b {
		if b[i] == '.' {
			b[i] = '/'
		}
	}
	return string(b)
}

// safeJSONError keeps encoding/json's message for unknown fields (it names our field, not
// the caller's data) and hides anything else.
func safeJSONError(err error) string {
	const p = "json: unknown field "
	if m := err.Error(); len(m) > len(p) && m[:len(p)] == p && len(m) < 100 {
		return "unknown field " + m[len(p):]
	}
	return "wrong shape"
}

func invalidField(pointer, detail string) *apiError {
	return &apiError{status: fiber.StatusBadRequest, code: CodeInvalidRequest, detail: "the request has invalid fields",
		fields: []FieldError{{Pointer: pointer, Detail: detail}}}
}

// verificationProblem maps the verification service's and the store's errors.
func verificationProblem(err error) error {
	var ie *verification.InvalidError
	var it *store.IllegalTransitionError
	var ee *verification.EvidenceError
	switch {
	case errors.As(err, &ie):
		return invalidField(ie.Field, ie.Detail)
	case errors.Is(err, store.ErrNotFound):
		return problemf(fiber.StatusNotFound, CodeNotFound, "no such verification session")
	case errors.Is(err, verification.ErrUnknownProvider):
		return &apiError{status: fiber.StatusBadRequest, code: CodeUnknownProvider, detail: err.Error()}
	case errors.Is(err, verification.ErrProviderUnavailable):
		return &apiError{status: fiber.StatusBadGateway, code: CodeProviderUnavailable,
			detail: "the identity provider did not start the session; retry with the same Idempotency-Key", cause: err}
	case errors.Is(err, verification.ErrConsentRequired):
		return problemf(fiber.StatusConflict, CodeConsentRequired, "record the person's consent (POST .../consent) before collecting evidence")
	case errors.Is(err, verification.ErrNotCapturing), errors.As(err, &it):
		return &apiError{status: fiber.StatusConflict, code: CodeInvalidState, detail: err.Error()}
	case errors.Is(err, verification.ErrNoEvidence):
		return problemf(fiber.StatusConflict, CodeEvidenceMissing, "add and upload evidence before submitting")
	case errors.As(err, &ee) && errors.Is(err, verification.ErrEvidenceDeleted):
		return problemf(fiber.StatusConflict, CodeEvidenceMissing, "evidence %s was deleted (erasure or retention) and cannot be submitted: open a new session", ee.EvidenceID)
	case errors.As(err, &ee) && errors.Is(err, evidence.ErrMissing):
		return problemf(fiber.StatusConflict, CodeEvidenceMissing, "evidence %s has not been uploaded", ee.EvidenceID)
	case errors.As(err, &ee) && errors.Is(err, evidence.ErrMismatch):
		return problemf(fiber.StatusUnprocessableEntity, CodeEvidenceMismatch, "evidence %s does not match its declared SHA-256 or size; upload it again", ee.EvidenceID)
	case errors.Is(err, verification.ErrNoEvidenceStore):
		return problemf(fiber.StatusNotImplemented, CodeUnavailable, "no evidence storage is configured on this server")
	case errors.Is(err, store.ErrDuplicateIdempotencyKey):
		return problemf(fiber.StatusUnprocessableEntity, CodeIdempotencyReused, "this Idempotency-Key was used with a different request body")
	case errors.Is(err, store.ErrInvalidRecord):
		return &apiError{status: fiber.StatusBadRequest, code: CodeInvalidRequest, detail: "the request has fields that cannot be stored (invalid UTF-8 or NUL bytes)", cause: err}
	}
	return storeProblem(err)
}

type createVerificationBody struct {
	UserID   string       `json:"user_id"`
	Provider string       `json:"provider"`
	Locale   string       `json:"locale"`
	Consent  *consentJSON `json:"consent"`
	// RetentionPolicy names a retention rule set of the server's retention file (a
	// jurisdiction's); absent: the file's default_policy.
	RetentionPolicy string `json:"retention_policy"`
}

type clientJSON struct {
	URL   string `json:"url,omitempty"`
	Token string `json:"token,omitempty"`
}

func (s *Server) createVerification(c *fiber.Ctx) error {
	var body createVerificationBody
	if err := decodeStrict(c, &body); err != nil {
		return err
	}
	if body.UserID == "" || len(body.UserID) > 256 || !printable(body.UserID) {
		return invalidField("/user_id", "required: printable text of 1 to 256 bytes (UTF-8)")
	}
	if body.Provider == "" {
		return invalidField("/provider", "required: one of the configured providers")
	}
	if body.Locale != "" && (len(body.Locale) > 35 || !printable(body.Locale)) {
		return invalidField("/locale", "a language tag such as en-GB")
	}
	key, err := idempotencyKey(c)
	if err != nil {
		return err
	}
	req := verification.CreateRequest{
		UserID: string([]byte(body.UserID)), Provider: body.Provider, Locale: body.Locale,
		Actor: actor(c), CorrelationID: requestID(c), RetentionPolicy: body.RetentionPolicy,
	}
	if key != "" {
		req.IdempotencyKey = actor(c) + ":" + key // the client's own, as for decisions
		sum := sha256.Sum256(c.Body())
		req.RequestHash = hex.EncodeToString(sum[:])
	}
	if body.Consent != nil {
		req.Consent = &store.Consent{PolicyHash: body.Consent.PolicyHash, Locale: body.Consent.Locale, Scope: body.Consent.Scope, GrantedAt: body.Consent.GrantedAt.UTC()}
	}
	out, err := s.deps.Verifications.Create(c.UserContext(), req)
	if err != nil {
		return verificationProblem(err)
	}
	status := fiber.StatusOK
	if out.Created {
		status = fiber.StatusCreated
	}
	resp := struct {
		verificationJSON
		Client *clientJSON `json:"client,omitempty"`
	}{verificationJSON: toVerificationJSON(out.Verification)}
	if out.ClientURL != "" || out.ClientToken != "" {
		resp.Client = &clientJSON{URL: out.ClientURL, Token: out.ClientToken}
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(status).JSON(resp)
}

func verificationID(c *fiber.Ctx) (string, error) {
	id := c.Params("id")
	if len(id) < 5 || len(id) > 64 || id[:4] != "ver_" || !isPrintableASCII(id) {
		return "", problemf(fiber.StatusNotFound, CodeNotFound, "no such verification session")
	}
	return string([]byte(id)), nil
}

func (s *Server) getVerification(c *fiber.Ctx) error {
	id, err := verificationID(c)
	if err != nil {
		return err
	}
	v, err := s.deps.Verifications.Get(c.UserContext(), id)
	if err != nil {
		return verificationProblem(err)
	}
	return c.JSON(toVerificationJSON(v))
}

func (s *Server) listVerifications(c *fiber.Ctx) error {
	user := c.Query("user_id")
	if user == "" || len(user) > 256 || !printable(user) {
		return invalidField("/user_id", "query parameter user_id is required")
	}
	vs, err := s.deps.Verifications.List(c.UserContext(), string([]byte(user)), 100)
	if err != nil {
		return verificationProblem(err)
	}
	out := make([]verificationJSON, 0, len(vs))
	for _, v := range vs {
		out = append(out, toVerificationJSON(v))
	}
	return c.JSON(fiber.Map{"verifications": out})
}

func (s *Server) recordConsent(c *fiber.Ctx) error {
	id, err := verificationID(c)
	if err != nil {
		return err
	}
	var body consentJSON
	if err := decodeStrict(c, &body); err != nil {
		return err
	}
	v, err := s.deps.Verifications.RecordConsent(c.UserContext(), id,
		store.Consent{PolicyHash: body.PolicyHash, Locale: body.Locale, Scope: body.Scope, GrantedAt: body.GrantedAt.UTC()}, actor(c), requestID(c))
	var ie *verification.InvalidError
	if errors.As(err, &ie) {
		// Here the body is the consent itself: /scope, not /consent/scope.
		return invalidField(strings.TrimPrefix(ie.Field, "/consent"), ie.Detail)
	}
	if err != nil {
		return verificationProblem(err)
	}
	return c.JSON(toVerificationJSON(v))
}

type evidenceItemBody struct {
	Kind        string `json:"kind"`
	ContentType string `json:"content_type"`
	SHA256      string `json:"sha256"`
	Size        int64  `json:"size"`
}

func (s *Server) addEvidence(c *fiber.Ctx) error {
	id, err := verificationID(c)
	if err != nil {
		return err
	}
	var body struct {
		Items []evidenceItemBody `json:"items"`
	}
	if err := decodeStrict(c, &body); err != nil {
		return err
	}
	reqs := make([]verification.EvidenceRequest, 0, len(body.Items))
	for _, it := range body.Items {
		reqs = append(reqs, verification.EvidenceRequest{Kind: it.Kind, ContentType: it.ContentType, SHA256: it.SHA256, Size: it.Size})
	}
	v, tickets, err := s.deps.Verifications.AddEvidence(c.UserContext(), id, reqs, actor(c), requestID(c))
	if err != nil {
		return verificationProblem(err)
	}
	type uploadJSON struct {
		EvidenceID string            `json:"evidence_id"`
		Method     string            `json:"method"`
		URL        string            `json:"url"`
		Headers    map[string]string `json:"headers"`
		ExpiresAt  time.Time         `json:"expires_at"`
	}
	ups := make([]uploadJSON, 0, len(tickets))
	for _, t := range tickets {
		ups = append(ups, uploadJSON{EvidenceID: t.EvidenceID, Method: t.Method, URL: t.URL,
			Headers: map[string]string{"Content-Type": t.ContentType}, ExpiresAt: t.ExpiresAt})
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"verification": toVerificationJSON(v), "uploads": ups})
}

func (s *Server) submitVerification(c *fiber.Ctx) error {
	id, err := verificationID(c)
	if err != nil {
		return err
	}
	v, err := s.deps.Verifications.Submit(c.UserContext(), id, actor(c), requestID(c))
	if err != nil {
		return verificationProblem(err)
	}
	return c.JSON(toVerificationJSON(v))
}

// receiveUpload is the target of the signed upload URLs of a local evidence bucket. The
// URL's signature is the authorization; no API key is needed.
func (s *Server) receiveUpload(c *fiber.Ctx) error {
	ev := s.deps.Verifications.Evidence()
	if ev == nil || !ev.Local() {
		return problemf(fiber.StatusNotFound, CodeNotFound, "no such resource")
	}
	u, err := url.Parse(string(c.Request().URI().FullURI()))
	if err != nil {
		return problemf(fiber.StatusForbidden, CodeUploadURLInvalid, "the upload URL is invalid or has expired; ask for a new one")
	}
	err = s.deps.Verifications.ReceiveUpload(c.UserContext(), u, c.Method(), c.Get(fiber.HeaderContentType), int64(len(c.Body())), bytes.NewReader(c.Body()))
	switch {
	case errors.Is(err, verification.ErrNotCapturing):
		return &apiError{status: fiber.StatusConflict, code: CodeInvalidState, detail: err.Error()}
	case errors.Is(err, store.ErrNotFound):
		return problemf(fiber.StatusNotFound, CodeNotFound, "no such verification session")
	case errors.Is(err, evidence.ErrBadURL):
		return problemf(fiber.StatusForbidden, CodeUploadURLInvalid, "the upload URL is invalid or has expired, or was used with another method or Content-Type; ask for a new one")
	case errors.Is(err, evidence.ErrTooLarge):
		return problemf(fiber.StatusRequestEntityTooLarge, CodeBodyTooLarge, "the file exceeds %d bytes", ev.MaxSize())
	case err != nil:
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// webhookHeader adapts Fiber's request headers to providers.Header.
type webhookHeader struct{ c *fiber.Ctx }

func (h webhookHeader) Get(k string) string { return string([]byte(h.c.Get(k))) }

func (s *Server) webhook(c *fiber.Ctx) error {
	if s.deps.Verifications == nil {
		return problemf(fiber.StatusNotFound, CodeNotFound, "no such resource")
	}
	if len(c.Body()) > s.cfg.WebhookBodyLimit {
		return problemf(fiber.StatusRequestEntityTooLarge, CodeBodyTooLarge, "the webhook body exceeds %d bytes", s.cfg.WebhookBodyLimit)
	}
	body := bytes.Clone(c.Body())
	res, err := s.deps.Verifications.HandleWebhook(c.UserContext(), string([]byte(c.Params("provider"))), webhookHeader{c}, body, requestID(c))
	var we *verification.WebhookError
	if errors.As(err, &we) {
		switch we.Reason {
		case verification.WebhookUnknownProvider:
			return problemf(fiber.StatusNotFound, CodeUnknownProvider, "no provider of that name is configured")
		case verification.WebhookMissingSignature, verification.WebhookBadSignature, verification.WebhookStaleTimestamp:
			return &apiError{status: fiber.StatusUnauthorized, code: CodeWebhookRejected, detail: "the webhook signature is missing, invalid or outside its time window (" + we.Reason + ")", cause: err}
		case verification.WebhookMalformedPayload:
			return &apiError{status: fiber.StatusBadRequest, code: CodeWebhookRejected, detail: "the webhook payload is not of the provider's documented shape (malformed_payload)", cause: err}
		case verification.WebhookUnknownSession:
			return &apiError{status: fiber.StatusNotFound, code: CodeUnknownSession, detail: "no verification session has this provider reference yet; redeliver later", cause: err}
		case verification.WebhookProviderUnavailable:
			return &apiError{status: fiber.StatusBadGateway, code: CodeProviderUnavailable, detail: "fetching the result from the provider failed; redeliver later", cause: err}
		}
	}
	if err != nil {
		return verificationProblem(err)
	}
	return c.JSON(fiber.Map{"applied": res.Applied, "result": res.Reason, "verification_id": res.VerificationID, "status": res.Status})
}

func (s *Server) cancelVerification(c *fiber.Ctx) error {
	id, err := verificationID(c)
	if err != nil {
		return err
	}
	v, err := s.deps.Verifications.Cancel(c.UserContext(), id, actor(c), requestID(c))
	if err != nil {
		return verificationProblem(err)
	}
	return c.JSON(toVerificationJSON(v))
}
