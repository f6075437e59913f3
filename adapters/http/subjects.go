package http

import (
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/verdict-engine/verdict/adapters/vault"
)

// eraseSubject handles DELETE /v1/subjects/{user_id} (scope admin): crypto-shredding of
// everything personal stored about the subject. It answers what was destroyed, as counts.
// Erasing a subject with nothing stored, or erasing twice, succeeds with zero counts; every
// call is audited.
func (s *Server) eraseSubject(c *fiber.Ctx) error {
	id, err := url.PathUnescape(c.Params("id"))
	id = strings.Clone(id) // fasthttp reuses the buffer behind c.Params
	if err != nil || id == "" || len(id) > 256 || !printable(id) {
		return invalidField("/user_id", "must be printable text of 1 to 256 bytes (UTF-8), URL-encoded")
	}
	var blobs vault.BlobDeleter
	if s.deps.Verifications != nil && s.deps.Verifications.Evidence() != nil {
		blobs = s.deps.Verifications.Evidence()
	}
	e, err := s.deps.Vault.Erase(c.UserContext(), id, actor(c), requestID(c), blobs)
	if err != nil {
		return storeProblem(err)
	}
	if e.EvidenceFailed > 0 {
		s.log.Warn("erasure left evidence objects", "request_id", requestID(c), "failed", e.EvidenceFailed, "err", e.EvidenceErr)
	}
	return c.JSON(e)
}
