package http

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// Scopes an API key can hold.
const (
	ScopeDecide = "decide" // POST /v1/decide, GET /v1/decisions/{id}
	ScopeLists  = "lists"  // /v1/lists
	ScopeAdmin  = "admin"  // everything
	// ScopeVerify: /v1/verifications (sessions, consent, evidence, submit).
	ScopeVerify = "verify"
	// ScopeReview: the review queue, /v1/reviews.
	ScopeReview = "review"
	// ScopePII: see unmasked personal data in the review queue.
	ScopePII = "pii"
	// ScopeLabel: attach outcome labels to decisions, POST /v1/decisions/{id}/label and
	// POST /v1/labels.
	ScopeLabel = "label"
)

// APIKey is a configured key: an id for logs and audit, the SHA-256 of its secret (the
// secret itself is never kept), and its scopes.
type APIKey struct {
	ID     string
	Hash   [32]byte
	Scopes []string
}

// ParseAPIKeys parses the VERDICT_API_KEYS format: comma-separated id:secret:scope+scope
// entries, e.g. "checkout:s3cr3t-value:decide,ops:0th3r:lists+admin". Secrets must be
// at least 16 characters. Only hashes are kept.
func ParseAPIKeys(s string) ([]APIKey, error) {
	var keys []APIKey
	seen := map[string]bool{}
	for _, ent := range strings.Split(s, ",") {
		ent = strings.TrimSpace(ent)
		if ent == "" {
			continue
		}
		parts := strings.Split(ent, ":")
		if len(parts) != 3 || parts[0] == "" {
			return nil, fmt.Errorf("api key entry %d: want id:secret:scopes", len(keys)+1)
		}
		if len(parts[1]) < 16 {
			return nil, fmt.Errorf("api key %q: secret must be at least 16 characters", parts[0])
		}
		if seen[parts[0]] {
			return nil, fmt.Errorf("api key %q: duplicate id", parts[0])
		}
		seen[parts[0]] = true
		k := APIKey{ID: parts[0], Hash: sha256.Sum256([]byte(parts[1]))}
		for _, sc := range strings.Split(parts[2], "+") {
			switch sc {
			case ScopeDecide, ScopeLists, ScopeAdmin, ScopeVerify, ScopeReview, ScopePII, ScopeLabel:
				k.Scopes = append(k.Scopes, sc)
			default:
				return nil, fmt.Errorf("api key %q: unknown scope %q (want decide, lists, verify, review, pii, label, admin)", parts[0], sc)
			}
		}
		keys = append(keys, k)
	}
	return keys, nil
}

type principal struct {
	id     string
	scopes []string
}

func (p principal) has(scope string) bool {
	return slices.Contains(p.scopes, scope) || slices.Contains(p.scopes, ScopeAdmin)
}

const localsPrincipal = "verdict.principal"

// authenticate resolves the caller from "Authorization: Bearer <key>" or "X-API-Key".
// Every configured key is compared, in constant time, so timing reveals nothing.
func (s *Server) authenticate(c *fiber.Ctx) error {
	if s.cfg.Dev {
		// Without keys, any web page the developer has open could otherwise drive the API
		// from their browser (a form or a no-cors fetch needs no preflight): a request a
		// browser marks as coming from another origin is refused.
		if crossOrigin(c) {
			return problemf(fiber.StatusForbidden, CodeForbidden, "--dev mode refuses requests from other web origins")
		}
		c.Locals(localsPrincipal, principal{id: "dev", scopes: []string{ScopeAdmin}})
		return c.Next()
	}
	secret := c.Get("X-API-Key")
	if auth := c.Get(fiber.HeaderAuthorization); secret == "" && auth != "" {
		// The scheme is case-insensitive (RFC 9110 §11.1): "bearer" is "Bearer".
		if len(auth) > 7 && strings.EqualFold(auth[:7], "Bearer ") {
			secret = strings.TrimSpace(auth[7:])
		}
	}
	if secret == "" {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="verdict"`)
		return problemf(fiber.StatusUnauthorized, CodeUnauthorized, "send an API key in Authorization: Bearer <key> or X-API-Key")
	}
	h := sha256.Sum256([]byte(secret))
	var match *APIKey
	for i := range s.cfg.APIKeys {
		if subtle.ConstantTimeCompare(h[:], s.cfg.APIKeys[i].Hash[:]) == 1 {
			match = &s.cfg.APIKeys[i]
		}
	}
	if match == nil {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="verdict", error="invalid_token"`)
		return problemf(fiber.StatusUnauthorized, CodeUnauthorized, "the API key is not valid")
	}
	c.Locals(localsPrincipal, principal{id: match.ID, scopes: match.Scopes})
	return c.Next()
}

// require returns middleware that lets through callers holding scope (or admin).
func require(scope string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		p, _ := c.Locals(localsPrincipal).(principal)
		if !p.has(scope) {
			return problemf(fiber.StatusForbidden, CodeForbidden, "this API key lacks the %q scope", scope)
		}
		return c.Next()
	}
}

func actor(c *fiber.Ctx) string {
	p, _ := c.Locals(localsPrincipal).(principal)
	return p.id
}

// crossOrigin reports whether a browser says the request comes from a page of another
// origin: Sec-Fetch-Site other than same-origin or none, or an Origin whose host is not
// the request's. Clients that are not browsers send neither header.
func crossOrigin(c *fiber.Ctx) bool {
	switch c.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return true
	}
	origin := c.Get(fiber.HeaderOrigin)
	if origin == "" {
		return false
	}
	u, err := url.Parse(origin)
	return err != nil || u.Host != string(c.Request().Host())
}
