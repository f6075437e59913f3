// Package http is Verdict's HTTP API (Fiber v2): authentication with scoped API keys,
// request validation, the decision path, lists, health, metrics and the OpenAPI
// document. Every error leaves as RFC 9457 application/problem+json.
package http

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/verdict-engine/verdict/adapters/throttle"
	"github.com/verdict-engine/verdict/adapters/vault"
	"github.com/verdict-engine/verdict/adapters/verification"
	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/engine/pii"
	"github.com/verdict-engine/verdict/signals"
	"github.com/verdict-engine/verdict/store"
)

// Config is the HTTP server's configuration.
type Config struct {
	// Dev disables authentication: every caller is an admin. Never in production.
	Dev bool
	// APIKeys are the accepted keys (hashed).
	APIKeys []APIKey
	// DecideTimeout is the overall deadline of one /v1/decide (default 150 ms).
	DecideTimeout time.Duration
	// RequestTimeout bounds the work of every other request (default 30 s; four times that
	// for a label import, a policy bundle and an evidence upload): a stalled store or
	// vendor gets a 503 after it, not a request held open for the stall.
	RequestTimeout time.Duration
	// BodyLimit is the largest accepted API request body in bytes (default 64 KiB).
	BodyLimit int
	// WebhookBodyLimit is the largest accepted webhook body (default 1 MiB).
	WebhookBodyLimit int
	// LabelImportLimit is the largest accepted CSV of POST /v1/labels
	// (default DefaultLabelImportLimit, 10 MiB).
	LabelImportLimit int
	Logger           *slog.Logger
}

// Committer durably writes one decision (store.GroupCommitter).
type Committer interface {
	Commit(ctx context.Context, rec store.DecisionRecord) error
}

// Deps are the server's collaborators.
type Deps struct {
	Engine    *engine.Engine
	Gatherer  *signals.Gatherer
	Lists     *signals.Lists
	Store     store.Store
	Committer Committer
	// Verifications is the verification subsystem; nil disables /v1/verifications,
	// /v1/webhooks and evidence uploads.
	Verifications *verification.Service
	// Shadow evaluates the shadow policy versions of stored decisions after their
	// answer; nil disables shadow evaluation.
	Shadow *Shadow
	// Registry receives Verdict's metrics and is served on /metrics.
	Registry *prometheus.Registry
	// Vault seals subjects' personal data and erases subjects. With a vault, the personal
	// data of a decision's input is handed to the Committer to be sealed (its writer must
	// be Vault.Writer); without one it is not stored at all, and /v1/subjects is absent.
	Vault *vault.Vault
	// Pseudonyms replaces IP addresses in stored snapshots; nil drops them.
	Pseudonyms *pii.Pseudonymizer
	// PoliciesChanged, when set, is called after this replica changed the live or shadow
	// policy versions (activation, approval, rollback, shadow), before the change is
	// answered, so that the replica serves them from its next decision rather than from its
	// next poll (cmd/verdict: policysync.Syncer.Sync).
	PoliciesChanged func(ctx context.Context)
}

// Server serves Verdict's HTTP API.
type Server struct {
	cfg     Config
	deps    Deps
	app     *fiber.App
	log     *slog.Logger
	metrics *metrics
	// failLogs lets a failure repeated on every request (a signal source or the store down,
	// a policy that errors, a 5xx on one route) be logged once per failureLogInterval with
	// the count left out, instead of once per request: at 3,000 decisions/s an outage would
	// otherwise write 3,000 lines a second, costing CPU when the service is degraded and
	// burying everything else. The metrics count every occurrence.
	failLogs *throttle.Throttle[string]
	draining atomic.Bool

	idPrefix  string
	idCounter atomic.Uint64
}

// New builds the server and its routes.
func New(cfg Config, deps Deps) *Server {
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	if cfg.DecideTimeout <= 0 {
		cfg.DecideTimeout = 150 * time.Millisecond
	}
	if cfg.BodyLimit <= 0 {
		cfg.BodyLimit = 64 << 10
	}
	if cfg.WebhookBodyLimit <= 0 {
		cfg.WebhookBodyLimit = 1 << 20
	}
	if cfg.LabelImportLimit <= 0 {
		cfg.LabelImportLimit = DefaultLabelImportLimit
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, deps: deps, log: cfg.Logger, metrics: newMetrics(deps.Registry),
		failLogs: throttle.New[string](failureLogInterval)}
	var b [6]byte
	_, _ = rand.Read(b[:])
	s.idPrefix = hex.EncodeToString(b[:])
	s.app = fiber.New(fiber.Config{
		AppName:               "verdict",
		BodyLimit:             serverBodyLimit(cfg, deps),
		DisableStartupMessage: true,
		ErrorHandler:          s.handleError,
		ReadTimeout:           10 * time.Second,
		WriteTimeout:          10 * time.Second,
		IdleTimeout:           60 * time.Second,
	})
	s.routes()
	return s
}

// App returns the Fiber app, for Listen and for tests (app.Test).
func (s *Server) App() *fiber.App { return s.app }

// Drain marks the server not ready, so load balancers stop sending new requests.
func (s *Server) Drain() { s.draining.Store(true) }

//go:embed openapi.json
var openapiDoc []byte

func (s *Server) routes() {
	a := s.app
	a.Use(s.countResponses, s.recoverer, s.requestContext, identityEncoding)

	a.Get("/healthz", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "ok"}) })
	a.Get("/readyz", s.ready)
	if s.deps.Registry != nil {
		a.Get("/metrics", adaptor.HTTPHandler(promhttp.HandlerFor(s.deps.Registry, promhttp.HandlerOpts{})))
	}
	a.Get("/review", s.reviewPage)
	a.Get("/review/:file", s.reviewPage)
	a.Get("/openapi.json", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Send(openapiDoc)
	})

	// Webhooks and evidence uploads authenticate by signature, not API key: they are
	// registered before the /v1 group, whose middleware would otherwise run first.
	if s.deps.Verifications != nil {
		a.Post("/v1/webhooks/:provider", s.webhook)
		a.Put(EvidenceUploadPath, s.receiveUpload)
	}

	// The label import holds its body to LabelImportLimit, not BodyLimit: registered
	// before the /v1 group too, it authenticates itself.
	a.Post("/v1/labels", s.authenticate, require(ScopeLabel), s.importLabels)

	s.publishRoute(a) // POST /v1/policies: a bundle outgrows the /v1 body limit
	v1 := a.Group("/v1", s.authenticate, s.limitBody)
	v1.Post("/decide", require(ScopeDecide), s.decide)
	v1.Get("/decisions/:id", require(ScopeDecide), s.getDecision)
	v1.Post("/decisions/:id/label", require(ScopeLabel), s.labelDecision)
	v1.Get("/lists/:list", require(ScopeLists), s.getList)
	v1.Put("/lists/:list/entries/:value", require(ScopeLists), s.putListEntry)
	v1.Delete("/lists/:list/entries/:value", require(ScopeLists), s.deleteListEntry)
	if s.deps.Verifications != nil {
		v1.Post("/verifications", require(ScopeVerify), s.createVerification)
		v1.Get("/verifications", require(ScopeVerify), s.listVerifications)
		v1.Get("/verifications/:id", require(ScopeVerify), s.getVerification)
		v1.Post("/verifications/:id/consent", require(ScopeVerify), s.recordConsent)
		v1.Post("/verifications/:id/evidence", require(ScopeVerify), s.addEvidence)
		v1.Post("/verifications/:id/submit", require(ScopeVerify), s.submitVerification)
		v1.Post("/verifications/:id/cancel", require(ScopeVerify), s.cancelVerification)
	}
	if s.deps.Vault != nil {
		v1.Delete("/subjects/:id", require(ScopeAdmin), s.eraseSubject)
	}
	v1.Get("/reviews", require(ScopeReview), s.listReviews)
	v1.Post("/reviews/:id/claim", require(ScopeReview), s.claimReview)
	v1.Post("/reviews/:id/decision", require(ScopeReview), s.decideReview)
	s.policyRoutes(v1)
}

// EvidenceUploadPath is where a local evidence bucket's signed upload URLs point.
const EvidenceUploadPath = "/v1/evidence-uploads"

// serverBodyLimit is the transport's limit: the largest of the API, webhook, label import
// and evidence limits. limitBody, the webhook and the import handlers hold the smaller
// routes to their own.
func serverBodyLimit(cfg Config, deps Deps) int {
	n := max(cfg.BodyLimit, cfg.WebhookBodyLimit, cfg.LabelImportLimit)
	if deps.Verifications != nil && deps.Verifications.Evidence() != nil && deps.Verifications.Evidence().Local() {
		n = max(n, int(deps.Verifications.Evidence().MaxSize()))
	}
	return n
}

// limitBody holds API requests to BodyLimit, and their bodies to JSON: every route of the
// /v1 group that takes a body takes JSON.
func (s *Server) limitBody(c *fiber.Ctx) error {
	body := c.Request().Body()
	if len(body) > s.cfg.BodyLimit {
		return problemf(fiber.StatusRequestEntityTooLarge, CodeBodyTooLarge, "the request body exceeds the size limit")
	}
	if len(body) > 0 && !jsonContentType(c.Get(fiber.HeaderContentType)) {
		return problemf(fiber.StatusUnsupportedMediaType, CodeUnsupportedMedia, "send the body as application/json")
	}
	return c.Next()
}

// identityEncoding refuses request bodies sent with a Content-Encoding (gzip, br, ...).
// Fiber would decompress them when a handler reads the body, after the size limits have
// been checked on the compressed bytes: a 61 KB gzip body became 60 MB in memory.
// Decision and webhook bodies are a few kilobytes; compressing them gains nothing.
// Every Content-Encoding header and every coding listed in one counts: Fiber decodes by
// the last, so reading only the first let "identity" then "gzip" through.
func identityEncoding(c *fiber.Ctx) error {
	for _, h := range c.Request().Header.PeekAll(fiber.HeaderContentEncoding) {
		for coding := range strings.SplitSeq(string(h), ",") {
			if coding = strings.TrimSpace(coding); coding != "" && !strings.EqualFold(coding, "identity") {
				return problemf(fiber.StatusUnsupportedMediaType, CodeUnsupportedMedia, "Content-Encoding is not accepted; send the body uncompressed")
			}
		}
	}
	return c.Next()
}

// jsonContentType reports whether a request's Content-Type is JSON (application/json, any
// case, with or without parameters such as charset) or absent. Cheaper than
// mime.ParseMediaType, which allocates: it runs on every decision.
func jsonContentType(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), fiber.MIMEApplicationJSON)
}

// requestContext gives every request an id and a context with the server's deadline.
func (s *Server) requestContext(c *fiber.Ctx) error {
	id := c.Get("X-Request-Id")
	if id == "" || len(id) > 128 || !isPrintableASCII(id) {
		id = s.newRequestID()
	} else {
		id = string([]byte(id)) // fasthttp reuses the header buffer
	}
	setRequestID(c, id)
	if c.Path() == "/v1/decide" {
		return c.Next() // it has its own deadline, Config.DecideTimeout
	}
	// Every other request's work is bounded (Config.RequestTimeout): a store or a vendor
	// that stalls gets a 503 after it, rather than a request held open as long as the
	// stall, a pooled connection held with it, and a shutdown waiting on both. The default
	// leaves room for a vendor call's retries (creating a session, fetching a result); the
	// routes that carry bulk data (a label import written in chunks, a policy bundle, an
	// evidence upload) get four times as long.
	d := s.cfg.RequestTimeout
	if bulkRoute(c) {
		d *= 4
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), d)
	defer cancel()
	c.SetUserContext(ctx)
	return c.Next()
}

func bulkRoute(c *fiber.Ctx) bool {
	switch c.Path() {
	case "/v1/labels", "/v1/policies", EvidenceUploadPath:
		return true
	}
	return false
}

// setRequestID names the request id for the handlers (requestID) and in the answer.
func setRequestID(c *fiber.Ctx, id string) {
	c.Locals(localsRequestID, id)
	c.Set("X-Request-Id", id)
}

const localsRequestID = "verdict.request_id"

func requestID(c *fiber.Ctx) string {
	id, _ := c.Locals(localsRequestID).(string)
	return id
}

// newRequestID returns a random per-server prefix and a counter: unique across replicas
// and restarts without a getrandom syscall per request.
func (s *Server) newRequestID() string {
	return s.idPrefix + "-" + strconv.FormatUint(s.idCounter.Add(1), 36)
}

// idempotencyKey returns the request's Idempotency-Key, "" when it sent none. A header
// sent empty (or blank: the value is trimmed) is refused rather than read as no key: the
// client meant its retries to be recognised, and they would each be decided and counted.
func idempotencyKey(c *fiber.Ctx) (string, error) {
	k := c.Get("Idempotency-Key")
	if k == "" && len(c.Request().Header.PeekAll("Idempotency-Key")) == 0 {
		return "", nil
	}
	if k == "" || len(k) > 255 || !isPrintableASCII(k) {
		return "", problemf(fiber.StatusBadRequest, CodeIdempotencyInvalid, "Idempotency-Key must be 1 to 255 visible ASCII characters (no spaces)")
	}
	return k, nil
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// recoverer turns a panic into a 500 problem and logs the stack server-side only.
func (s *Server) recoverer(c *fiber.Ctx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic serving request", "request_id", requestID(c), "route", c.Route().Path, "panic", r, "stack", string(debug.Stack()))
			err = &apiError{status: fiber.StatusInternalServerError, code: CodeInternal, detail: "an internal error occurred; quote the request_id to the operator"}
		}
	}()
	return c.Next()
}

// failureLogInterval is how often a failure that repeats on every request is logged.
const failureLogInterval = 10 * time.Second

func (s *Server) handleError(c *fiber.Ctx, err error) error {
	ae := toProblem(err)
	if requestID(c) == "" {
		// A request refused by the transport before any handler ran (headers too large,
		// a body over the transport's limit, a malformed request line) has no id yet; its
		// answer still carries one. countResponses did not run for it either: it is
		// counted here, as unmatched (no route ran), so that a client sending oversized
		// headers shows in the error rate.
		setRequestID(c, s.newRequestID())
		s.metrics.responses.WithLabelValues("unmatched", strconv.Itoa(ae.status)).Inc()
	}
	if ae.status >= 500 {
		// The same failure on every request of a route (the store down under /readyz
		// polls or reads) is logged once per interval, with the count left out.
		route := c.Route().Path
		if ok, left := s.failLogs.Allow("http "+strconv.Itoa(ae.status)+" "+route, time.Now()); ok {
			s.log.Error("request failed", "request_id", requestID(c), "route", route, "status", ae.status, "err", err,
				"suppressed", left)
		}
	}
	return writeProblem(c, ae)
}

func (s *Server) ready(c *fiber.Ctx) error {
	if s.draining.Load() {
		return problemf(fiber.StatusServiceUnavailable, CodeUnavailable, "shutting down")
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), time.Second)
	defer cancel()
	if err := s.deps.Store.Ping(ctx); err != nil {
		return &apiError{status: fiber.StatusServiceUnavailable, code: CodeUnavailable, detail: "the store is unavailable", cause: err}
	}
	set := s.deps.Engine.Policies()
	return c.JSON(fiber.Map{"status": "ready", "actions": set.Actions(), "policies_loaded_at": set.LoadedAt().UTC().Format(time.RFC3339)})
}

var errNoStore = errors.New("no store configured")
