package http

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/verdict-engine/verdict/store"
)

// getDecision answers GET /v1/decisions/{id}: the stored answer plus, as "input", the
// exact policy input document it was evaluated on.
func (s *Server) getDecision(c *fiber.Ctx) error {
	u, err := uuid.Parse(c.Params("id"))
	if err != nil {
		return problemf(fiber.StatusNotFound, CodeNotFound, "no decision with this id")
	}
	id := u.String() // canonical: lower case, as stored

	rec, err := s.deps.Store.GetDecision(c.UserContext(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return problemf(fiber.StatusNotFound, CodeNotFound, "no decision with this id")
	case errors.Is(err, store.ErrUnavailable):
		return &apiError{status: fiber.StatusServiceUnavailable, code: CodeUnavailable, detail: "the store is unavailable; retry", cause: err}
	case err != nil:
		return err
	}
	out := appendField(rec.Response, "stored_at", []byte(`"`+rec.CreatedAt.UTC().Format(time.RFC3339Nano)+`"`))
	if rec.Outcome == "review" {
		// A reviewer's resolution is what the caller that got "review" waits for.
		r, err := s.deps.Store.GetReviewResolution(c.UserContext(), store.ReviewDecision, id)
		switch {
		case err == nil:
			b, err := json.Marshal(reviewResolution{Outcome: r.Outcome, Reason: r.Reason, Reviewer: r.Reviewer, DecidedAt: r.DecidedAt})
			if err != nil {
				return err
			}
			out = appendField(out, "review", b)
		case errors.Is(err, store.ErrUnavailable):
			return &apiError{status: fiber.StatusServiceUnavailable, code: CodeUnavailable, detail: "the store is unavailable; retry", cause: err}
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
	}
	out = appendField(out, "input", rec.Input)
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(out)
}

// reviewResolution is a decided review of a decision as GET /v1/decisions/{id} shows it.
type reviewResolution struct {
	Outcome   string    `json:"outcome"` // approve or block
	Reason    string    `json:"reason"`
	Reviewer  string    `json:"reviewer"` // the reviewer's API key name
	DecidedAt time.Time `json:"decided_at"`
}
