package http

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

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
	seen := map[string]int{}      // id → entry
	secrets := map[[32]byte]int{} // secret hash → entry
	for n, ent := range strings.Split(s, ",") {
		// Errors name the entry by position, never by a field: an entry written
		// secret:id:scopes would otherwise print its secret.
		n++
		ent = strings.TrimSpace(ent)
		if ent == "" {
			continue
		}
		parts := strings.Split(ent, ":")
		if len(parts) != 3 || parts[0] == "" {
			return nil, fmt.Errorf("entry %d: want id:secret:scopes", n)
		}
		id, secret := parts[0], parts[1]
		switch {
		case strings.ContainsFunc(secret, unicode.IsSpace):
			return nil, fmt.Errorf("entry %d: the secret holds white space, which no client can send", n)
		case utf8.RuneCountInString(secret) < 16:
			return nil, fmt.Errorf("entry %d: the secret must be at least 16 characters", n)
		}
		if prev, dup := seen[id]; dup {
			return nil, fmt.Errorf("entry %d: the same id as entry %d", n, prev)
		}
		seen[id] = n
		k := APIKey{ID: id, Hash: sha256.Sum256([]byte(secret))}
		// One secret under two ids would authenticate as one of them, with its scopes.
		if prev, dup := secrets[k.Hash]; dup {
			return nil, fmt.Errorf("entry %d: the same secret as entry %d", n, prev)
		}
		secrets[k.Hash] = n
		for _, sc := range strings.Split(parts[2], "+") {
			switch sc {
			case ScopeDecide, ScopeLists, ScopeAdmin, ScopeVerify, ScopeReview, ScopePII, ScopeLabel:
				k.Scopes = append(k.Scopes, sc)
			default:
				shown := ""
				if len(sc) <= 12 && strings.IndexFunc(sc, func(r rune) bool { return r < 'a' || r > 'z' }) < 0 {
					shown = fmt.Sprintf(" %q", sc) // a misspelt scope, not a misplaced secret
				}
				return nil, fmt.Errorf("entry %d: unknown scope%s (want decide, lists, verify, review, pii, label, admin)", n, shown)
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
