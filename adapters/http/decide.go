package http

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/engine/pii"
	"github.com/verdict-engine/verdict/signals"
	"github.com/verdict-engine/verdict/store"
)

// decideRequest is the body of POST /v1/decide. Sections are passed to the policy as
// posted; a few conventional fields are validated because signals depend on them.
type decideRequest struct {
	Action   string         `json:"action"`
	Subject  map[string]any `json:"subject"`
	Device   map[string]any `json:"device"`
	Context  map[string]any `json:"context"`
	Behavior map[string]any `json:"behavior"`
}

// parsedRequest is a validated decideRequest with the fields signals need.
type parsedRequest struct {
	decideRequest
	policy   *engine.Policy // the action's policy in the set the request was parsed against
	userID   string
	deviceID string
	ip       netip.Addr
	country  string
	// emailDomain is the domain of subject.email when it is an address, for email lists.
	emailDomain string
}

// parseDecideRequest decodes and validates a /v1/decide body. Errors are *apiError.
// maxInputDepth bounds how deeply a decide body may nest objects and arrays (the body
// itself is level 1, subject level 2). Policy inputs are shallow; a body of 60 KB nested
// 9,000 deep took seconds of CPU and gigabytes of memory on its way to the store.
const maxInputDepth = 32

// tooDeep reports whether the JSON text b nests objects and arrays deeper than max. It
// reads b once, skipping strings, without decoding; malformed text is left to the decoder.
func tooDeep(b []byte, max int) bool {
	depth, inString := 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			if depth++; depth > max {
				return true
			}
		case '}', ']':
			depth--
		}
	}
	return false
}

func parseDecideRequest(body []byte, lookup func(string) (*engine.Policy, bool), actions func() []string) (*parsedRequest, error) {
	if tooDeep(body, maxInputDepth) {
		return nil, problemf(fiber.StatusBadRequest, CodeInvalidRequest, "the body nests objects and arrays deeper than %d levels", maxInputDepth)
	}
	var req decideRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, decodeProblem(err, body)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, problemf(fiber.StatusBadRequest, CodeMalformedJSON, "the body holds data after the JSON object")
	}
	var fields []FieldError
	bad := func(ptr, format string, args ...any) {
		fields = append(fields, FieldError{Pointer: ptr, Detail: fmt.Sprintf(format, args...)})
	}
	p := &parsedRequest{decideRequest: req}
	switch {
	case req.Action == "":
		bad("/action", "is required")
	case !engine.ValidAction(req.Action):
		bad("/action", "must be lowercase letters, digits and _, starting with a letter")
	}
	fields = append(fields, checkSections(req.Subject, req.Device, req.Context, req.Behavior, p)...)
	if len(fields) > 0 {
		return nil, &apiError{status: fiber.StatusBadRequest, code: CodeInvalidRequest, detail: "the request has invalid fields", fields: fields}
	}
	var known bool
	if p.policy, known = lookup(req.Action); !known {
		return nil, problemf(fiber.StatusUnprocessableEntity, CodeUnknownAction, "no policy for action %q; known actions: %s", req.Action, strings.Join(actions(), ", "))
	}
	return p, nil
}

// CheckInput validates the request sections of a policy input (subject, device, context) as
// POST /v1/decide does, and normalises them as it does (two-letter countries upper-cased), so
// that `verdict eval` refuses what the server answers with 400 and evaluates what the server
// would. It returns the invalid fields, nil when there are none. The action is not checked:
// the caller looks it up in its bundle.
func CheckInput(in *engine.Input) []FieldError {
	return checkSections(in.Subject, in.Device, in.Context, in.Behavior, &parsedRequest{})
}

// checkSections validates the conventional fields of a decide request's sections, records
// those signals need in p, and normalises country codes in place.
func checkSections(subject, device, ctxSection, behavior map[string]any, p *parsedRequest) []FieldError {
	var fields []FieldError
	bad := func(ptr, format string, args ...any) {
		fields = append(fields, FieldError{Pointer: ptr, Detail: fmt.Sprintf(format, args...)})
	}
	req := struct{ Subject, Device, Context, Behavior map[string]any }{subject, device, ctxSection, behavior}
	if req.Subject == nil {
		bad("/subject", "is required and must be an object")
	} else {
		switch id := req.Subject["id"].(type) {
		case string:
			if id == "" || len(id) > 256 || !printable(id) {
				bad("/subject/id", "must be printable text of 1 to 256 bytes (UTF-8)")
			}
			p.userID = id
		case nil:
			bad("/subject/id", "is required")
		default:
			bad("/subject/id", "must be a string")
		}
	}
	// subject.country is free-form, but a two-letter code is upper-cased like context.country
	// below, so that policies comparing the two (login's UNUSUAL_COUNTRY) see one spelling.
	if c, ok := req.Subject["country"].(string); ok && len(c) == 2 && alpha(c) {
		req.Subject["country"] = strings.ToUpper(c)
	}
	if e, ok := req.Subject["email"].(string); ok && strings.Contains(e, "@") {
		p.emailDomain, _ = signals.EmailDomain(e) // not an address: no email list matches
	}
	if v, ok := req.Device["id"]; ok {
		id, isStr := v.(string)
		if !isStr || id == "" || len(id) > 256 || !printable(id) {
			bad("/device/id", "must be a string of printable text, 1 to 256 bytes (UTF-8)")
		}
		p.deviceID = id
	}
	if v, ok := req.Context["ip"]; ok {
		s, isStr := v.(string)
		a, err := netip.ParseAddr(s)
		if !isStr || err != nil || a.Zone() != "" {
			bad("/context/ip", "must be an IPv4 or IPv6 address")
		}
		p.ip = a.Unmap()
	}
	if v, ok := req.Context["country"]; ok {
		s, isStr := v.(string)
		if !isStr || len(s) != 2 || !alpha(s) {
			bad("/context/country", "must be an ISO 3166 alpha-2 code")
		} else {
			// ISO 3166 codes are upper case; lists match "de" as DE, and so must the
			// policy: login's UNUSUAL_COUNTRY compared "de" with a subject's "DE".
			p.country = strings.ToUpper(s)
			req.Context["country"] = p.country
		}
	}
	if v, ok := req.Context["amount"]; ok {
		f, isNum := v.(float64)
		if !isNum || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			bad("/context/amount", "must be a non-negative number")
		}
	}
	for i := range typedFields {
		f := &typedFields[i]
		var section map[string]any
		switch f.section {
		case sectionSubject:
			section = req.Subject
		case sectionDevice:
			section = req.Device
		case sectionContext:
			section = req.Context
		default:
			section = req.Behavior
		}
		v, ok := section[f.key]
		if !ok {
			continue
		}
		var right bool
		switch f.kind {
		case kindNumber:
			_, right = v.(float64)
		case kindInteger:
			n, isNum := v.(float64)
			right = isNum && n == math.Trunc(n)
		case kindBool:
			_, right = v.(bool)
		default:
			_, right = v.(string)
		}
		if !right {
			if v == nil {
				bad(f.pointer, "must be %s; leave the field out when it is unknown", f.kind)
			} else {
				bad(f.pointer, "must be %s", f.kind)
			}
		}
	}
	return fields
}

// typedFields are the documented fields of the input document (README, "The policy input
// document"; the DecideRequest schema of openapi.json) with their JSON type, beyond those
// parseDecideRequest checks itself. A field of another type is refused: a rule compares
// a number or tests a boolean, and "bot_score": "0.95" or "emulator": "true" would make
// it skip silently, a fraud rule switched off by the caller's serialiser. The fields stay
// optional, and their values free (a currency or platform the policies do not know).
var typedFields = [...]struct {
	section int
	key     string
	kind    fieldKind
	pointer string
}{
	{sectionSubject, "account_age_days", kindNumber, "/subject/account_age_days"},
	{sectionSubject, "country", kindString, "/subject/country"},
	{sectionSubject, "email_verified", kindBool, "/subject/email_verified"},
	{sectionSubject, "phone_verified", kindBool, "/subject/phone_verified"},
	{sectionDevice, "platform", kindString, "/device/platform"},
	{sectionDevice, "emulator", kindBool, "/device/emulator"},
	{sectionDevice, "rooted", kindBool, "/device/rooted"},
	{sectionContext, "currency", kindString, "/context/currency"},
	{sectionContext, "payout_method", kindString, "/context/payout_method"},
	{sectionContext, "new_beneficiary", kindBool, "/context/new_beneficiary"},
	{sectionContext, "auth_method", kindString, "/context/auth_method"},
	{sectionContext, "failed_attempts", kindInteger, "/context/failed_attempts"},
	{sectionBehavior, "bot_score", kindNumber, "/behavior/bot_score"},
	{sectionBehavior, "session_age_seconds", kindNumber, "/behavior/session_age_seconds"},
	{sectionBehavior, "paste_in_credentials", kindBool, "/behavior/paste_in_credentials"},
}

const (
	sectionSubject = iota
	sectionDevice
	sectionContext
	sectionBehavior
)

type fieldKind uint8

const (
	kindString fieldKind = iota
	kindNumber
	kindInteger
	kindBool
)

func (k fieldKind) String() string {
	switch k {
	case kindNumber:
		return "a number"
	case kindInteger:
		return "a whole number"
	case kindBool:
		return "true or false"
	}
	return "a string"
}

func decodeProblem(err error, body []byte) *apiError {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return problemf(fiber.StatusBadRequest, CodeMalformedJSON, "malformed JSON at byte %d", se.Offset)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return problemf(fiber.StatusBadRequest, CodeMalformedJSON, "the body is empty or truncated")
	case errors.As(err, &te):
		ptr := "/" + strings.ReplaceAll(te.Field, ".", "/")
		if te.Field == "" {
			return problemf(fiber.StatusBadRequest, CodeMalformedJSON, "the body must be a JSON object")
		}
		detail := "must be " + jsonKind(te.Type.Kind().String())
		if strings.HasPrefix(te.Value, "number") && (te.Type.Kind() == reflect.Float64 || te.Type.Kind() == reflect.Interface) {
			detail = "holds a number beyond the range of a 64-bit float"
			if p, ok := outOfRangeNumberPointer(body, strings.TrimPrefix(te.Value, "number ")); ok {
				ptr, detail = p, "is a number beyond the range of a 64-bit float"
			}
		}
		return &apiError{status: fiber.StatusBadRequest, code: CodeInvalidRequest, detail: "the request has invalid fields",
			fields: []FieldError{{Pointer: ptr, Detail: detail}}}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &apiError{status: fiber.StatusBadRequest, code: CodeInvalidRequest, detail: "the request has unknown fields",
			fields: []FieldError{{Pointer: "/" + name, Detail: "unknown field; allowed: action, subject, device, context, behavior"}}}
	}
	return problemf(fiber.StatusBadRequest, CodeMalformedJSON, "the body is not valid JSON")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "map":
		return "an object"
	case "string":
		return "a string"
	case "float64", "float32", "int", "int64", "int32", "uint", "uint64", "uint32":
		return "a number"
	case "slice", "array":
		return "an array"
	case "bool":
		return "true or false"
	}
	return "of another type"
}

func printable(s string) bool {
	for _, c := range s {
		if c < 0x20 || c == 0x7f || c == 0xfffd {
			return false
		}
	}
	return true
}

func alpha(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// decideResponse is the answer of POST /v1/decide, stored as given (latency_us and
// timings are added to the live answer only).
type decideResponse struct {
	DecisionID         string          `json:"decision_id"`
	Action             string          `json:"action"`
	Outcome            engine.Outcome  `json:"outcome"`
	Score              float64         `json:"score"`
	Reasons            []engine.Reason `json:"reasons"`
	StepUp             string          `json:"step_up,omitempty"`
	Policy             policyRef       `json:"policy"`
	SignalsUnavailable []string        `json:"signals_unavailable"`
	Degraded           *degraded       `json:"degraded,omitempty"`
	CreatedAt          time.Time       `json:"created_at"`
}

type policyRef struct {
	Action  string `json:"action"`
	Version string `json:"version"`
	Hash    string `json:"hash"`
}

// degraded says that a fail mode shaped the answer, why, and whether it was stored.
type degraded struct {
	FailMode string   `json:"fail_mode"`
	Causes   []string `json:"causes"`
	Stored   bool     `json:"stored"`
}

type timings struct {
	Parse        int64 `json:"parse"`
	Velocity     int64 `json:"signals_velocity"`
	Lists        int64 `json:"signals_lists"`
	Verification int64 `json:"signals_verification"`
	Signals      int64 `json:"signals"`
	Evaluate     int64 `json:"evaluate"`
	Persist      int64 `json:"persist"`
	Total        int64 `json:"total"`
}

func (s *Server) decide(c *fiber.Ctx) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.DecideTimeout)
	defer cancel()
	body := c.Body() // its size and media type were checked by limitBody
	set := s.deps.Engine.Policies()
	req, err := parseDecideRequest(body, set.Policy, set.Actions)
	if err != nil {
		return err
	}

	var idemKey, reqHash string
	k, err := idempotencyKey(c)
	if err != nil {
		return err
	}
	if k != "" {
		// Keys are the client's: two API keys that both send "order-123" do not share it.
		// Key names cannot hold ':' (VERDICT_API_KEYS is name:secret:scopes).
		idemKey = actor(c) + ":" + k
		sum := sha256.Sum256(body)
		reqHash = hex.EncodeToString(sum[:])
		// Copies sent at once (a client retrying before its first answer, here or on another
		// replica) all get past this look-up; the store keeps one decision under the key and
		// the others answer as it did, and the velocity event named by the key below is
		// counted once.
		if done, err := s.replayIdempotent(c, ctx, idemKey, reqHash); done || err != nil {
			return err
		}
	}
	parsed := time.Now()

	// Stores keep microseconds: the answer says what a later read of the decision will.
	now := time.Now().UTC().Truncate(time.Microsecond)
	id, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("decision id: %w", err)
	}
	decisionID := id.String()

	// The velocity event of a request with an Idempotency-Key is named by the key, not
	// by this attempt's decision: the counters ignore an event they already hold, so a
	// retry that reaches another replica while the first attempt is in flight, or after a
	// "stored": false, is counted once, and a new device's first sighting is not taken by
	// the attempt that loses.
	eventID := decisionID
	if idemKey != "" {
		sum := sha256.Sum256([]byte(idemKey))
		eventID = "idem-" + hex.EncodeToString(sum[:16])
	}
	// Only the sources the policy reads are gathered, with those its shadow versions read
	// (computed when they were loaded); the velocity event is recorded whatever they are.
	policy := req.policy
	g := s.deps.Gatherer.Gather(ctx, signals.Request{
		EventID: eventID, Action: req.Action, UserID: req.userID, DeviceID: req.deviceID,
		IP: req.ip, Country: req.country, EmailDomain: req.emailDomain, At: now,
		Sources: policy.Reads() | s.deps.Shadow.Reads(req.Action),
	})
	gathered := time.Now()
	for src, e := range g.Errors {
		s.metrics.sourceErrors.WithLabelValues(src).Inc()
		if ok, left := s.failLogs.Allow("source "+src, gathered); ok {
			s.log.Warn("signal source unavailable", "request_id", requestID(c), "source", src, "err", e,
				"gathered", slices.Contains(g.Signals.Unavailable, src), "suppressed", left)
		}
	}

	in := &engine.Input{
		Action: req.Action, Subject: req.Subject, Device: orEmpty(req.Device),
		Context: orEmpty(req.Context), Behavior: orEmpty(req.Behavior), Signals: g.Signals,
	}
	d, evalErr := s.deps.Engine.Evaluate(ctx, policy, in)
	var deg *degraded
	if evalErr != nil {
		if ok, left := s.failLogs.Allow("evaluate "+req.Action, time.Now()); ok {
			s.log.Error("policy evaluation failed", "request_id", requestID(c), "action", req.Action,
				"policy_version", policy.Version, "err", evalErr, "suppressed", left)
		}
		d = engine.ApplyFailMode(d, policy.FailMode, engine.CausePolicyError, true)
		deg = &degraded{FailMode: policy.FailMode.String(), Causes: []string{engine.CausePolicyError}}
	}
	// A source only a shadow version reads does not degrade the live answer.
	unavailable := engine.Degraded(policy, &g.Signals)
	if unavailable == nil {
		unavailable = []string{}
	}
	if len(unavailable) > 0 {
		d = engine.ApplyFailMode(d, policy.FailMode, engine.CauseSignalsUnavailable, false)
		if deg == nil {
			deg = &degraded{FailMode: policy.FailMode.String()}
		}
		deg.Causes = append(deg.Causes, engine.CauseSignalsUnavailable)
	}
	evaluated := time.Now()

	resp := decideResponse{
		DecisionID: decisionID, Action: req.Action, Outcome: d.Outcome, Score: d.Score, Reasons: d.Reasons,
		StepUp: d.StepUp, Policy: policyRef{Action: d.Policy.Action, Version: d.Policy.Version, Hash: d.Policy.Hash},
		SignalsUnavailable: unavailable, CreatedAt: now,
	}
	if resp.Reasons == nil {
		resp.Reasons = []engine.Reason{}
	}
	if deg != nil {
		deg.Stored = true
		resp.Degraded = deg
	}
	// The stored snapshot keeps no personal data; what was taken out is sealed under the
	// subject's key by the committer's writer (adapters/vault), or dropped without a vault.
	snapshot, removed := pii.Split(in, s.deps.Pseudonyms)
	// AppendJSON writes json.Marshal's bytes without its reflection; a typical snapshot
	// is about 1 KB, so one allocation usually holds it.
	inputJSON, err := snapshot.AppendJSON(make([]byte, 0, 2048))
	if err != nil {
		return fmt.Errorf("encode input: %w", err)
	}
	var piiJSON []byte
	if removed != nil && s.deps.Vault != nil {
		if piiJSON, err = json.Marshal(removed); err != nil {
			return fmt.Errorf("encode personal data: %w", err)
		}
	}
	// appendJSON writes json.Marshal's bytes without its reflection; an answer with a
	// few reasons (about 600 bytes with two) fits in one allocation.
	respJSON, err := resp.appendJSON(make([]byte, 0, decideResponseSize))
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	rec := store.DecisionRecord{
		ID: decisionID, Action: req.Action, SubjectID: req.userID, Outcome: d.Outcome.String(), Score: d.Score,
		ReasonCodes: reasonCodes(d.Reasons), PolicyVersion: d.Policy.Version, PolicyHash: d.Policy.Hash,
		Input: inputJSON, PIIPlain: piiJSON, Response: respJSON, IdempotencyKey: idemKey, RequestHash: reqHash,
		CreatedAt: now, Actor: actor(c), CorrelationID: requestID(c),
	}
	if deg != nil {
		rec.FailMode = deg.FailMode
	}
	err = s.deps.Committer.Commit(ctx, rec)
	if errors.Is(err, store.ErrUnavailable) && s.storedAfterAll(ctx, decisionID) {
		// The write failed in the one ambiguous way (the deadline or the connection ended
		// while the commit was in flight) and the decision is stored after all: answer it,
		// rather than a fail-mode outcome that contradicts the stored record and its audit
		// event under the same id.
		err = nil
	}
	persisted := time.Now()
	switch {
	case err == nil:
		s.deps.Shadow.Enqueue(decisionID, in, d.Outcome) // a channel send; evaluated after the answer
	case errors.Is(err, store.ErrDuplicateIdempotencyKey):
		// A concurrent request with the same key won the race: answer as it did.
		if done, rerr := s.replayIdempotent(c, context.WithoutCancel(ctx), idemKey, reqHash); done || rerr != nil {
			return rerr
		}
		return fmt.Errorf("idempotency key vanished after conflict")
	default:
		// Not stored: the answer follows the fail mode and says it was not stored. After an
		// unavailable store whose read-back failed too, the commit may still have landed;
		// the log says so rather than contradict a record found later.
		if ok, left := s.failLogs.Allow("store", time.Now()); ok {
			msg := "decision not stored"
			if errors.Is(err, store.ErrUnavailable) {
				msg = "decision not confirmed stored (the store may still have committed it)"
			}
			s.log.Error(msg, "request_id", requestID(c), "decision_id", decisionID,
				"action", req.Action, "err", err, "suppressed", left)
		}
		d = engine.ApplyFailMode(d, policy.FailMode, engine.CauseStoreUnavailable, false)
		if deg == nil {
			deg = &degraded{FailMode: policy.FailMode.String()}
		}
		deg.Causes = append(deg.Causes, engine.CauseStoreUnavailable)
		deg.Stored = false
		resp.Outcome, resp.Reasons, resp.StepUp, resp.Degraded = d.Outcome, d.Reasons, d.StepUp, deg
		if respJSON, err = resp.appendJSON(make([]byte, 0, decideResponseSize)); err != nil {
			return fmt.Errorf("encode response: %w", err)
		}
	}

	m := s.metrics
	for _, cause := range deg.causes() {
		m.degraded.WithLabelValues(req.Action, cause).Inc()
	}
	outcome := d.Outcome.String()
	m.decisions.WithLabelValues(req.Action, outcome).Inc()
	for _, r := range d.Reasons {
		m.reasons.WithLabelValues(req.Action, r.Code).Inc()
	}
	m.parse.Observe(seconds(parsed.Sub(start)))
	m.signals.Observe(seconds(gathered.Sub(parsed)))
	m.evaluate.Observe(seconds(evaluated.Sub(gathered)))
	m.persist.Observe(seconds(persisted.Sub(evaluated)))
	m.velocity.Observe(seconds(g.Timings.Velocity))
	m.lists.Observe(seconds(g.Timings.Lists))
	if g.Timings.Verification > 0 {
		m.verification.Observe(seconds(g.Timings.Verification))
	}

	total := time.Since(start)
	m.decisionLatency.WithLabelValues(req.Action, outcome).Observe(seconds(total))
	out := appendField(respJSON, "latency_us", strconv.AppendInt(nil, total.Microseconds(), 10))
	if c.Query("debug") == "timings" {
		tj, _ := json.Marshal(timings{
			Parse: parsed.Sub(start).Microseconds(), Velocity: g.Timings.Velocity.Microseconds(),
			Lists: g.Timings.Lists.Microseconds(), Verification: g.Timings.Verification.Microseconds(),
			Signals: gathered.Sub(parsed).Microseconds(), Evaluate: evaluated.Sub(gathered).Microseconds(),
			Persist: persisted.Sub(evaluated).Microseconds(), Total: total.Microseconds(),
		})
		out = appendField(out, "timings_us", tj)
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(out)
}

func (d *degraded) causes() []string {
	if d == nil {
		return nil
	}
	return d.Causes
}

// replayIdempotent answers from a stored decision when key was used before: the stored
// answer for the same body, 422 for another body. It reports whether it answered; a key the
// store cannot look up is logged and left to the decision's fail mode, not answered.
func (s *Server) replayIdempotent(c *fiber.Ctx, ctx context.Context, key, reqHash string) (bool, error) {
	idem, err := s.deps.Store.LookupIdempotency(ctx, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	case err != nil:
		// The store could not say whether the key was used: decide anyway rather than
		// answer 503, so the action's fail mode applies as it does without a key. A
		// decision stored under the key meanwhile wins at commit (the store keeps one per
		// key, and the velocity event named by the key counts once); if the store is still
		// down, the answer says "stored": false and a retry gets what was stored.
		if ok, left := s.failLogs.Allow("idempotency lookup", time.Now()); ok {
			s.log.Error("idempotency key not checked; deciding without it", "request_id", requestID(c),
				"err", err, "suppressed", left)
		}
		return false, nil
	}
	if idem.RequestHash != reqHash {
		return true, problemf(fiber.StatusUnprocessableEntity, CodeIdempotencyReused, "this Idempotency-Key was used with a different request body")
	}
	rec, err := s.deps.Store.GetDecision(ctx, idem.DecisionID)
	if err != nil {
		return true, &apiError{status: fiber.StatusServiceUnavailable, code: CodeUnavailable, detail: "the stored decision could not be read; retry", cause: err}
	}
	c.Set("Idempotent-Replayed", "true")
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return true, c.Send(rec.Response)
}

// storedAfterAll reports whether the decision id is in the store, read within
// ambiguousCheckTimeout of its own (the request's deadline has usually passed by then).
// A store that cannot answer counts as not stored: the fail-mode answer then says
// "stored": false, and a retry with the Idempotency-Key returns the stored decision if the
// write did land.
func (s *Server) storedAfterAll(ctx context.Context, id string) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ambiguousCheckTimeout)
	defer cancel()
	_, err := s.deps.Store.GetDecision(ctx, id)
	return err == nil
}

// ambiguousCheckTimeout bounds the read that settles a failed write (storedAfterAll).
const ambiguousCheckTimeout = 100 * time.Millisecond

// appendField adds "name":value to the end of a JSON object.
func appendField(obj []byte, name string, value []byte) []byte {
	out := make([]byte, 0, len(obj)+len(name)+len(value)+4)
	out = append(out, obj[:len(obj)-1]...)
	out = append(out, ',', '"')
	out = append(out, name...)
	out = append(out, '"', ':')
	out = append(out, value...)
	return append(out, '}')
}

func reasonCodes(rs []engine.Reason) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Code
	}
	return out
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}
