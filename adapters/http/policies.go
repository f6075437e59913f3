package http

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/store"
)

// Problem codes of the policy lifecycle API.
const (
	// CodeInvalidPolicy: the version does not compile (400, errors[] name file:line), or
	// does not define the action it is activated or shadowed for (422).
	CodeInvalidPolicy = "invalid_policy"
	// CodeUnknownVersion: the body names a version that was never published.
	CodeUnknownVersion = "unknown_policy_version"
	// CodeSelfApproval: an activation's requester tried to approve it.
	CodeSelfApproval = "self_approval"
	// CodeActivationStale: another version went live after the activation was requested.
	CodeActivationStale = "activation_stale"
)

// Limits of the policy lifecycle API.
const (
	policyBodyLimit   = 1 << 20 // a published bundle, files and all
	maxPolicyFiles    = 256
	maxShadowVersions = 5
	shadowReportSince = 24 * time.Hour // default window of the shadow report
)

// policyRoutes registers the policy lifecycle API (scope admin) on the /v1 group, but
// for publishing, which needs a larger body: see publishRoute.
func (s *Server) policyRoutes(v1 fiber.Router) {
	admin := require(ScopeAdmin)
	v1.Get("/policies", admin, s.listPolicies)
	v1.Get("/policies/:hash", admin, s.getPolicy)
	v1.Post("/policies/activations/:id/approve", admin, s.approveActivation)
	v1.Get("/policies/:action/activations", admin, s.listActivations)
	v1.Post("/policies/:action/activate", admin, s.activatePolicy)
	v1.Post("/policies/:action/rollback", admin, s.rollbackPolicy)
	v1.Put("/policies/:action/shadow", admin, s.setShadow)
	v1.Get("/policies/:action/shadow", admin, s.shadowReport)
}

// publishRoute registers POST /v1/policies on the app itself, before the /v1 group, so
// that the group's body limit does not run first: a bundle with its tests outgrows it.
func (s *Server) publishRoute(a *fiber.App) {
	a.Post("/v1/policies", s.authenticate, require(ScopeAdmin), s.limitPolicyBody, s.publishPolicy)
}

func (s *Server) limitPolicyBody(c *fiber.Ctx) error {
	if len(c.Request().Body()) > policyBodyLimit {
		return problemf(fiber.StatusRequestEntityTooLarge, CodeBodyTooLarge, "a policy version may be at most %d bytes of JSON", policyBodyLimit)
	}
	if !jsonContentType(c.Get(fiber.HeaderContentType)) {
		return problemf(fiber.StatusUnsupportedMediaType, CodeUnsupportedMedia, "send the body as application/json")
	}
	return c.Next()
}

// publishBody is the body of POST /v1/policies.
type publishBody struct {
	Label     string            `json:"label"`
	Changelog string            `json:"changelog"`
	Author    string            `json:"author"`
	Files     map[string]string `json:"files"`
}

type policyVersionJSON struct {
	Hash      string            `json:"hash"`
	Label     string            `json:"label"`
	Author    string            `json:"author"`
	Changelog string            `json:"changelog"`
	CreatedAt time.Time         `json:"created_at"`
	Files     map[string]string `json:"files,omitempty"`
	Policies  []compiledJSON    `json:"policies,omitempty"`
}

// compiledJSON describes one action's policy in a version.
type compiledJSON struct {
	Action   string `json:"action"`
	Version  string `json:"version"`
	Language string `json:"language"`
	FailMode string `json:"fail_mode"`
}

func versionJSON(v store.PolicyVersion) policyVersionJSON {
	return policyVersionJSON{Hash: v.Hash, Label: v.Label, Author: v.Author, Changelog: v.Changelog, CreatedAt: v.CreatedAt.UTC()}
}

func compiledPolicies(set *engine.PolicySet) []compiledJSON {
	out := make([]compiledJSON, 0, len(set.Actions()))
	for _, a := range set.Actions() {
		p, _ := set.Policy(a)
		out = append(out, compiledJSON{Action: a, Version: p.Version, Language: p.Language, FailMode: p.FailMode.String()})
	}
	return out
}

// publishPolicy compiles the posted files as the replicas will and, when they compile,
// stores them as an immutable version addressed by their hash: 201, or 200 when that
// exact version was already published.
func (s *Server) publishPolicy(c *fiber.Ctx) error {
	var body publishBody
	if err := decodeStrict(c, &body); err != nil {
		return err
	}
	var fields []FieldError
	bad := func(ptr, format string, args ...any) {
		fields = append(fields, FieldError{Pointer: ptr, Detail: fmt.Sprintf(format, args...)})
	}
	// The limits count characters, as openapi.json's maxLength does, not UTF-8 bytes.
	if body.Label == "" || utf8.RuneCountInString(body.Label) > 128 || !printable(body.Label) {
		bad("/label", "is required: 1 to 128 printable characters")
	}
	if utf8.RuneCountInString(body.Changelog) > 4000 || strings.ContainsRune(body.Changelog, 0) {
		bad("/changelog", "must be at most 4000 characters")
	}
	if utf8.RuneCountInString(body.Author) > 128 || !printable(body.Author) {
		bad("/author", "must be at most 128 printable characters")
	}
	if len(body.Files) == 0 || len(body.Files) > maxPolicyFiles {
		bad("/files", "must hold 1 to %d files (path → content)", maxPolicyFiles)
	}
	files := make(map[string][]byte, len(body.Files))
	for _, p := range slices.Sorted(maps.Keys(body.Files)) {
		if !fs.ValidPath(p) || p == "." || len(p) > 256 || !printable(p) || strings.ContainsRune(p, '\\') {
			bad(filePointer(p), "must be a relative slash-separated path without . or .. elements, at most 256 characters")
			continue
		}
		files[p] = []byte(body.Files[p])
	}
	if len(fields) > 0 {
		return &apiError{status: fiber.StatusBadRequest, code: CodeInvalidRequest, detail: "the request has invalid fields", fields: fields}
	}
	hash := engine.BundleHash(files)
	set, err := engine.LoadVersion(hash, files)
	if err != nil {
		return loadProblem(err)
	}
	// What `verdict policy publish` refuses is refused here too: reason codes not in the
	// bundle's reason_codes.yaml, or not UPPER_SNAKE (which evaluate to POLICY_ERROR).
	if probs := engine.LintFiles(files); len(probs) > 0 {
		return policyProblem("the policy does not pass lint: ", probs)
	}
	author := actor(c)
	if body.Author != "" && body.Author != author {
		// The API key is who publishes; a name given in the body is kept next to it.
		author = body.Author + " (" + author + ")"
	}
	v := store.PolicyVersion{Hash: hash, Label: body.Label, Author: author, Changelog: body.Changelog, Files: files, CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	created, err := s.deps.Store.PublishPolicy(c.UserContext(), v, requestID(c))
	if err != nil {
		return storeProblem(err)
	}
	if !created {
		if stored, err := s.deps.Store.PolicyVersion(c.UserContext(), hash); err == nil {
			v = stored
		}
	}
	out := versionJSON(v)
	out.Policies = compiledPolicies(set)
	status := fiber.StatusOK
	if created {
		status = fiber.StatusCreated
	}
	return c.Status(status).JSON(out)
}

// loadProblem turns a compile failure into a 400 naming every file:line.
func loadProblem(err error) error {
	var le *engine.LoadError
	if !errors.As(err, &le) || len(le.Problems) == 0 {
		return err
	}
	return policyProblem("the policy does not compile: ", le.Problems)
}

// policyProblem is a 400 naming every problem's file:line, the first one in the detail.
func policyProblem(detail string, problems []engine.Problem) error {
	ae := &apiError{status: fiber.StatusBadRequest, code: CodeInvalidPolicy, detail: detail + problems[0].String()}
	for _, p := range problems {
		ptr := "/files"
		if p.File != "" {
			ptr = filePointer(p.File)
		}
		ae.fields = append(ae.fields, FieldError{Pointer: ptr, Detail: p.String()})
	}
	return ae
}

// filePointer is the JSON pointer of a file in a publish body.
func filePointer(path string) string {
	return "/files/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(path)
}

func (s *Server) listPolicies(c *fiber.Ctx) error {
	ctx := c.UserContext()
	vs, err := s.deps.Store.ListPolicyVersions(ctx)
	if err != nil {
		return storeProblem(err)
	}
	live, err := s.deps.Store.LivePolicies(ctx)
	if err != nil {
		return storeProblem(err)
	}
	out := make([]policyVersionJSON, len(vs))
	for i, v := range vs {
		out[i] = versionJSON(v)
	}
	return c.JSON(fiber.Map{"versions": out, "live": liveJSON(live)})
}

func liveJSON(l store.LivePolicies) fiber.Map {
	active, shadow := l.Active, l.Shadow
	if active == nil {
		active = map[string]string{}
	}
	if shadow == nil {
		shadow = map[string][]string{}
	}
	return fiber.Map{"generation": l.Generation, "active": active, "shadow": shadow}
}

var versionHash = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// hashParam returns the :hash route parameter, URL-decoded and copied.
func hashParam(c *fiber.Ctx) (string, error) {
	h, err := url.PathUnescape(c.Params("hash"))
	if err != nil || !versionHash.MatchString(h) {
		return "", problemf(fiber.StatusBadRequest, CodeInvalidRequest, "a version is named by its hash: sha256:<64 hex digits>")
	}
	return string([]byte(h)), nil
}

func (s *Server) getPolicy(c *fiber.Ctx) error {
	h, err := hashParam(c)
	if err != nil {
		return err
	}
	v, err := s.deps.Store.PolicyVersion(c.UserContext(), h)
	if errors.Is(err, store.ErrNotFound) {
		return problemf(fiber.StatusNotFound, CodeNotFound, "no published policy version %s", h)
	}
	if err != nil {
		return storeProblem(err)
	}
	out := versionJSON(v)
	out.Files = make(map[string]string, len(v.Files))
	for p, b := range v.Files {
		out.Files[p] = string(b)
	}
	return c.JSON(out)
}

// actionParam returns the :action route parameter, validated and copied.
func actionParam(c *fiber.Ctx) (string, error) {
	a := c.Params("action")
	if !engine.ValidAction(a) {
		return "", problemf(fiber.StatusBadRequest, CodeInvalidRequest, "an action is lowercase letters, digits and _, starting with a letter")
	}
	return string([]byte(a)), nil
}

// unknownAction refuses an action the server does not serve, for the policy endpoints that
// would otherwise answer a misspelt one (payuot) with an empty history as if all were well.
// An action with history is answered whether or not it is served now.
func (s *Server) unknownAction(action string) error {
	actions := s.deps.Engine.Policies().Actions()
	if slices.Contains(actions, action) {
		return nil
	}
	return problemf(fiber.StatusUnprocessableEntity, CodeUnknownAction, "no policy for action %q; known actions: %s", action, strings.Join(actions, ", "))
}

// versionFor loads a published version and checks that it compiles and defines action;
// ptr is the body field that named it.
func (s *Server) versionFor(c *fiber.Ctx, h, action, ptr string) error {
	if !versionHash.MatchString(h) {
		return &apiError{status: fiber.StatusBadRequest, code: CodeInvalidRequest, detail: "the request has invalid fields",
			fields: []FieldError{{Pointer: ptr, Detail: "must be a version hash: sha256:<64 hex digits>"}}}
	}
	v, err := s.deps.Store.PolicyVersion(c.UserContext(), h)
	if errors.Is(err, store.ErrNotFound) {
		return &apiError{status: fiber.StatusUnprocessableEntity, code: CodeUnknownVersion, detail: "no published policy version " + h,
			fields: []FieldError{{Pointer: ptr, Detail: "not published"}}}
	}
	if err != nil {
		return storeProblem(err)
	}
	set, err := engine.LoadVersion(h, v.Files)
	if err != nil {
		if ae, ok := loadProblem(err).(*apiError); ok {
			ae.status = fiber.StatusUnprocessableEntity
			return ae
		}
		return err
	}
	if _, ok := set.Policy(action); !ok {
		return &apiError{status: fiber.StatusUnprocessableEntity, code: CodeInvalidPolicy,
			detail: fmt.Sprintf("version %s defines no policy for %q (it has %s)", h, action, strings.Join(set.Actions(), ", ")),
			fields: []FieldError{{Pointer: ptr, Detail: "does not define the action"}}}
	}
	return nil
}

type activateBody struct {
	Version         string `json:"version"`
	RequireApproval bool   `json:"require_approval"`
}

type activationJSON struct {
	ID       string    `json:"id"`
	Action   string    `json:"action"`
	Version  string    `json:"version"`  // "" for the default bundle
	Previous string    `json:"previous"` // "" for the default bundle
	Actor    string    `json:"actor"`
	Approver string    `json:"approver,omitempty"`
	Status   string    `json:"status"`
	At       time.Time `json:"at"`
}

func toActivationJSON(a store.PolicyActivation) activationJSON {
	return activationJSON{ID: a.ID, Action: a.Action, Version: a.Hash, Previous: a.Previous, Actor: a.Actor,
		Approver: a.Approver, Status: a.Status, At: a.At.UTC()}
}

// activatePolicy makes a version live for an action (200), or records the request for a
// second approver when require_approval (202). Replicas serve it within their poll.
func (s *Server) activatePolicy(c *fiber.Ctx) error {
	action, err := actionParam(c)
	if err != nil {
		return err
	}
	var body activateBody
	if err := decodeStrict(c, &body); err != nil {
		return err
	}
	if err := s.versionFor(c, body.Version, action, "/version"); err != nil {
		return err
	}
	a, err := s.deps.Store.ActivatePolicy(c.UserContext(), store.PolicyActivation{Action: action, Hash: body.Version, Actor: actor(c)}, body.RequireApproval, requestID(c))
	if errors.Is(err, store.ErrNotFound) {
		return problemf(fiber.StatusUnprocessableEntity, CodeUnknownVersion, "no published policy version %s", body.Version)
	}
	if err != nil {
		return storeProblem(err)
	}
	status := fiber.StatusOK
	if a.Status == store.ActivationPending {
		status = fiber.StatusAccepted
	} else {
		s.policiesChanged(c.UserContext())
	}
	return c.Status(status).JSON(toActivationJSON(a))
}

// approveActivation makes a pending activation live; the approver is the caller's key,
// which must not be the requester's.
func (s *Server) approveActivation(c *fiber.Ctx) error {
	id := string([]byte(c.Params("id")))
	if id == "" || len(id) > 128 || !isPrintableASCII(id) {
		return problemf(fiber.StatusBadRequest, CodeInvalidRequest, "invalid activation id")
	}
	a, err := s.deps.Store.ApproveActivation(c.UserContext(), id, actor(c), requestID(c))
	switch {
	case errors.Is(err, store.ErrLiveChanged):
		return problemf(fiber.StatusConflict, CodeActivationStale, "another version of the action went live after this activation was requested; request it again")
	case errors.Is(err, store.ErrConflict):
		return problemf(fiber.StatusConflict, CodeSelfApproval, "an activation is approved by another API key than the one that requested it")
	case errors.Is(err, store.ErrNotFound):
		return problemf(fiber.StatusNotFound, CodeNotFound, "no pending activation with this id")
	case err != nil:
		return storeProblem(err)
	}
	s.policiesChanged(c.UserContext())
	return c.JSON(toActivationJSON(a))
}

// policiesChanged tells this replica's policy sync that the live or shadow versions
// changed, so that it serves them now.
func (s *Server) policiesChanged(ctx context.Context) {
	if s.deps.PoliciesChanged != nil {
		s.deps.PoliciesChanged(ctx)
	}
}

// rollbackPolicy makes the action's previous version live again (the default bundle
// when there was none).
func (s *Server) rollbackPolicy(c *fiber.Ctx) error {
	action, err := actionParam(c)
	if err != nil {
		return err
	}
	a, err := s.deps.Store.RollbackPolicy(c.UserContext(), action, actor(c), requestID(c))
	if errors.Is(err, store.ErrNotFound) {
		if err := s.unknownAction(action); err != nil {
			return err
		}
		return problemf(fiber.StatusNotFound, CodeNotFound, "action %q runs the default bundle: nothing to roll back", action)
	}
	if err != nil {
		return storeProblem(err)
	}
	s.policiesChanged(c.UserContext())
	return c.JSON(toActivationJSON(a))
}

func (s *Server) listActivations(c *fiber.Ctx) error {
	action, err := actionParam(c)
	if err != nil {
		return err
	}
	as, err := s.deps.Store.PolicyActivations(c.UserContext(), action)
	if err != nil {
		return storeProblem(err)
	}
	if len(as) == 0 {
		if err := s.unknownAction(action); err != nil {
			return err
		}
	}
	out := make([]activationJSON, len(as))
	for i, a := range as {
		out[i] = toActivationJSON(a)
	}
	return c.JSON(fiber.Map{"action": action, "activations": out})
}

type shadowBody struct {
	Versions []string `json:"versions"`
}

// setShadow replaces the action's shadow versions ([] clears them). Each must be
// published, compile and define the action.
func (s *Server) setShadow(c *fiber.Ctx) error {
	action, err := actionParam(c)
	if err != nil {
		return err
	}
	var body shadowBody
	if err := decodeStrict(c, &body); err != nil {
		return err
	}
	if body.Versions == nil || len(body.Versions) > maxShadowVersions {
		return &apiError{status: fiber.StatusBadRequest, code: CodeInvalidRequest, detail: "the request has invalid fields",
			fields: []FieldError{{Pointer: "/versions", Detail: fmt.Sprintf("is required: 0 to %d version hashes", maxShadowVersions)}}}
	}
	for i, h := range body.Versions {
		ptr := fmt.Sprintf("/versions/%d", i)
		if slices.Index(body.Versions, h) != i {
			return &apiError{status: fiber.StatusBadRequest, code: CodeInvalidRequest, detail: "the request has invalid fields",
				fields: []FieldError{{Pointer: ptr, Detail: "is listed twice"}}}
		}
		if err := s.versionFor(c, h, action, ptr); err != nil {
			return err
		}
	}
	err = s.deps.Store.SetShadow(c.UserContext(), action, body.Versions, actor(c), requestID(c))
	if errors.Is(err, store.ErrNotFound) {
		return problemf(fiber.StatusUnprocessableEntity, CodeUnknownVersion, "a shadow version is not published")
	}
	if err != nil {
		return storeProblem(err)
	}
	s.policiesChanged(c.UserContext())
	return c.JSON(fiber.Map{"action": action, "versions": body.Versions})
}

type agreementJSON struct {
	Version string `json:"version"`
	Total   int64  `json:"total"`
	Agree   int64  `json:"agree"`
	// Agreement is Agree / Total; null without results.
	Agreement *float64 `json:"agreement"`
	// Confusion counts decisions by live outcome, then shadow outcome.
	Confusion map[string]map[string]int64 `json:"confusion"`
	// PolicyErrors counts the results where the version failed to evaluate: their
	// outcome is the version's fail mode, not its rules' decision.
	PolicyErrors int64 `json:"policy_errors"`
}

// shadowReport compares the action's live outcomes since ?since= (RFC 3339, default 24 h
// ago) with each shadow version's on the same inputs.
func (s *Server) shadowReport(c *fiber.Ctx) error {
	action, err := actionParam(c)
	if err != nil {
		return err
	}
	since := time.Now().Add(-shadowReportSince).UTC()
	if q := c.Query("since"); q != "" {
		if since, err = time.Parse(time.RFC3339, q); err != nil {
			return problemf(fiber.StatusBadRequest, CodeInvalidRequest, "since must be an RFC 3339 time, e.g. 2026-11-23T12:00:00Z")
		}
	}
	rs, err := s.deps.Store.ShadowAgreement(c.UserContext(), action, since)
	if err != nil {
		return storeProblem(err)
	}
	if len(rs) == 0 {
		if err := s.unknownAction(action); err != nil {
			return err
		}
	}
	out := make([]agreementJSON, len(rs))
	for i, r := range rs {
		out[i] = agreementJSON{Version: r.Hash, Total: r.Total, Agree: r.Agree, Confusion: r.Confusion, PolicyErrors: r.Errors}
		if r.Total > 0 {
			f := float64(r.Agree) / float64(r.Total)
			out[i].Agreement = &f
		}
		if out[i].Confusion == nil {
			out[i].Confusion = map[string]map[string]int64{}
		}
	}
	return c.JSON(fiber.Map{"action": action, "since": since.UTC(), "versions": out})
}
