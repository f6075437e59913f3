package http

import (
	"embed"
	"io/fs"
	"path"

	"github.com/gofiber/fiber/v2"
)

// reviewFiles is the reviewer's page: static HTML, CSS and JavaScript over the JSON review
// API. It holds no data itself; every item comes from /v1/reviews with the reviewer's key.
//
//go:embed review/index.html review/app.js review/app.css
var reviewFiles embed.FS

var reviewTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
}

// reviewPage serves /review and its assets with headers that keep the page to its own
// origin: no inline script, no framing, no referrer.
func (s *Server) reviewPage(c *fiber.Ctx) error {
	name := "index.html"
	if f := c.Params("file"); f != "" {
		name = path.Base(f)
	}
	b, err := fs.ReadFile(reviewFiles, "review/"+name)
	if err != nil {
		return problemf(fiber.StatusNotFound, CodeNotFound, "no such resource")
	}
	c.Set(fiber.HeaderContentType, reviewTypes[path.Ext(name)])
	c.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("Referrer-Policy", "no-referrer")
	c.Set("Cache-Control", "no-store")
	return c.Send(b)
}
