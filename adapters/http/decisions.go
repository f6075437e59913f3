package http

import (
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
	out = appendField(out, "input", rec.Input)
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(out)
}
