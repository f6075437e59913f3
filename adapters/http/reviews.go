package http

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/verdict-engine/verdict/adapters/vault"
	engpii "github.com/verdict-engine/verdict/engine/pii"
	"github.com/verdict-engine/verdict/store"
)

// reviewClaimTTL is how long a claim holds an item for its reviewer.
const reviewClaimTTL = 15 * time.Minute

type reviewItemJSON struct {
	ID           string    `json:"id"`
	Kind         string    `json:"kind"`
	UserID       string    `json:"user_id"`
	Action       string    `json:"action,omitempty"`
	Status       string    `json:"status"`
	Score        float64   `json:"score"`
	ReasonCodes  []string  `json:"reason_codes"`
	CreatedAt    time.Time `json:"created_at"`
	ClaimedBy    string    `json:"claimed_by,omitempty"`
	ClaimedUntil time.Time `json:"claimed_until,omitzero"`
	PIIMasked    bool      `json:"pii_masked"`
	// PIIUnavailable is set on an unmasked view when the decision's sealed personal data
	// cannot be decrypted (its subject key was destroyed by an erasure that raced with the
	// decision, or the value was tampered with): only the PII-free snapshot is shown. An
	// erasure also deletes the sealed data, after which the snapshot alone is shown.
	PIIUnavailable bool           `json:"pii_unavailable,omitempty"`
	Subject        map[string]any `json:"subject,omitempty"`
	Context        map[string]any `json:"context,omitempty"`
	Signals        any            `json:"signals,omitempty"`
}

// masked reports whether reviewers without the pii scope see a field's value masked: the
// personal-data keys of engine/pii, and ids and IP addresses (pseudonyms, but linkable).
func masked(key string) bool {
	switch strings.ToLower(key) {
	case "ip", "id", "user_id":
		return true
	}
	return engpii.IsKey(key)
}

// MaskPII returns v with the values of PII-bearing keys masked, recursively.
func maskPII(v any, key string) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = maskPII(x, k)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = maskPII(x, key)
		}
		return out
	case string:
		if masked(key) {
			return maskString(t)
		}
	}
	return v
}

// maskString keeps the first character and the length class only.
func maskString(s string) string {
	if s == "" {
		return ""
	}
	r := []rune(s)
	return string(r[0]) + "***"
}

func (s *Server) listReviews(c *fiber.Ctx) error {
	limit := 50
	if q := c.Query("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > 500 {
			return invalidField("/limit", "an integer from 1 to 500")
		}
		limit = n
	}
	items, err := s.deps.Store.ListReviews(c.UserContext(), limit)
	if err != nil {
		return storeProblem(err)
	}
	// Personal data is masked unless the caller holds the pii scope and asks for it with
	// ?unmask=true; every unmasked view is audited with the items it showed.
	unmask := c.Query("unmask")
	if unmask != "" && unmask != "true" && unmask != "false" {
		return invalidField("/unmask", "true or false")
	}
	pii := unmask == "true"
	if pii && !hasScope(c, ScopePII) {
		return problemf(fiber.StatusForbidden, CodeForbidden, "unmasking personal data needs the %q scope", ScopePII)
	}
	if pii {
		ids := make([]string, 0, len(items))
		for _, it := range items {
			ids = append(ids, it.ID)
		}
		ev, err := store.PIIUnmaskedEvent(actor(c), ids, "GET /v1/reviews", requestID(c), time.Now().UTC())
		if err == nil {
			err = s.deps.Store.AppendAudit(c.UserContext(), ev)
		}
		if err != nil {
			return storeProblem(err)
		}
	}
	out := make([]reviewItemJSON, 0, len(items))
	for _, it := range items {
		j := reviewItemJSON{ID: it.ID, Kind: it.Kind, UserID: it.UserID, Action: it.Action, Status: it.Status, Score: it.Score,
			ReasonCodes: it.ReasonCodes, CreatedAt: it.CreatedAt, ClaimedBy: it.ClaimedBy, ClaimedUntil: it.ClaimedUntil, PIIMasked: !pii}
		if j.ReasonCodes == nil {
			j.ReasonCodes = []string{}
		}
		if !pii {
			j.UserID = maskString(j.UserID)
		}
		if it.Kind == store.ReviewDecision {
			if rec, err := s.deps.Store.GetDecision(c.UserContext(), it.ID); err == nil {
				var doc map[string]any
				if json.Unmarshal(rec.Input, &doc) == nil {
					if pii {
						j.PIIUnavailable = !s.unsealInput(c.UserContext(), rec, doc)
					}
					j.Subject, _ = doc["subject"].(map[string]any)
					j.Context, _ = doc["context"].(map[string]any)
					j.Signals = doc["signals"]
					if !pii {
						j.Subject, _ = maskPII(j.Subject, "").(map[string]any)
						j.Context, _ = maskPII(j.Context, "").(map[string]any)
					}
				}
			}
		}
		out = append(out, j)
	}
	return c.JSON(fiber.Map{"reviews": out})
}

func hasScope(c *fiber.Ctx, scope string) bool {
	p, _ := c.Locals(localsPrincipal).(principal)
	return p.has(scope)
}

// reviewTarget infers the item kind from its id: verification ids start with "ver_",
// decision ids are UUIDs.
func reviewTarget(c *fiber.Ctx) (kind, id string, err error) {
	id = c.Params("id")
	if strings.HasPrefix(id, "ver_") && len(id) <= 64 && isPrintableASCII(id) {
		return store.ReviewVerification, string([]byte(id)), nil
	}
	if _, perr := uuid.Parse(id); perr == nil {
		return store.ReviewDecision, string([]byte(id)), nil
	}
	return "", "", problemf(fiber.StatusNotFound, CodeNotFound, "no such review item")
}

func reviewProblem(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return problemf(fiber.StatusNotFound, CodeNotFound, "no such open review item")
	case errors.Is(err, store.ErrClaimed):
		return problemf(fiber.StatusConflict, CodeReviewClaimed, "another reviewer holds this item")
	}
	return verificationProblem(err)
}

func (s *Server) claimReview(c *fiber.Ctx) error {
	kind, id, err := reviewTarget(c)
	if err != nil {
		return err
	}
	until := time.Now().Add(reviewClaimTTL).UTC()
	it, err := s.deps.Store.ClaimReview(c.UserContext(), kind, id, actor(c), until, requestID(c))
	if err != nil {
		return reviewProblem(err)
	}
	return c.JSON(fiber.Map{"id": it.ID, "kind": it.Kind, "claimed_by": it.ClaimedBy, "claimed_until": it.ClaimedUntil})
}

type reviewDecisionBody struct {
	Outcome string `json:"outcome"`
	Reason  string `json:"reason"`
	Note    string `json:"note"`
}

func (s *Server) decideReview(c *fiber.Ctx) error {
	kind, id, err := reviewTarget(c)
	if err != nil {
		return err
	}
	var body reviewDecisionBody
	if err := decodeStrict(c, &body); err != nil {
		return err
	}
	allowed := []string{store.StatusApproved, store.StatusRejected, store.StatusNeedsResubmission}
	if kind == store.ReviewDecision {
		allowed = []string{"approve", "block"}
	}
	if !containsStr(allowed, body.Outcome) {
		return invalidField("/outcome", "one of "+strings.Join(allowed, ", "))
	}
	if !reasonCodeOK(body.Reason) {
		return invalidField("/reason", "a reason code in UPPER_SNAKE_CASE, such as DOCUMENT_VERIFIED_MANUALLY")
	}
	if utf8.RuneCountInString(body.Note) > 2000 || !printable(body.Note) {
		return invalidField("/note", "at most 2000 printable characters")
	}
	r := store.ReviewResolution{Kind: kind, ID: id, Reviewer: actor(c), Outcome: body.Outcome, Reason: body.Reason,
		CorrelationID: requestID(c), DecidedAt: time.Now().UTC()}
	if body.Note != "" && s.deps.Pseudonyms != nil {
		// Keyed: a plain SHA-256 of a short note (a phone number) is found by guessing.
		// Without the key there is no digest, as there is no IP stand-in.
		r.NoteSHA256 = s.deps.Pseudonyms.Digest("review note", []byte(body.Note))
	}
	if err := s.deps.Store.ResolveReview(c.UserContext(), r); err != nil {
		if errors.Is(err, store.ErrClaimed) {
			return problemf(fiber.StatusConflict, CodeReviewClaimed, "you hold no current claim on this item (not claimed by you, "+
				"lapsed, or released because the session's score or reasons changed): claim it and review it again")
		}
		return reviewProblem(err)
	}
	return c.JSON(fiber.Map{"id": id, "kind": kind, "outcome": body.Outcome, "reason": body.Reason, "reviewer": r.Reviewer})
}

func containsStr(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

func reasonCodeOK(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// unsealInput puts a decision's sealed personal data back into its decoded snapshot doc.
// It reports false when there was personal data that cannot be read any more (erased,
// undecryptable); a decision stored without personal data reports true.
func (s *Server) unsealInput(ctx context.Context, rec store.DecisionRecord, doc map[string]any) bool {
	if rec.PII == nil {
		return true
	}
	if s.deps.Vault == nil {
		return false
	}
	plain, err := s.deps.Vault.Open(ctx, rec.SubjectID, vault.DecisionAD(rec.ID), rec.PII)
	if err != nil {
		if !errors.Is(err, vault.ErrShredded) {
			s.log.Warn("decision personal data unreadable", "decision_id", rec.ID, "err", err)
		}
		return false
	}
	var fields []engpii.Field
	if err := json.Unmarshal(plain, &fields); err != nil {
		return false
	}
	engpii.Merge(doc, fields)
	return true
}
