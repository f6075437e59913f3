package http

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"mime"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/verdict-engine/verdict/store"
)

// Outcome label limits: the stores' (store.MaxLabelTags, store.MaxLabelTagLen).
const (
	MaxLabelTags     = store.MaxLabelTags
	maxDecisionIDLen = 128 // decision ids are UUIDs; imported ones may be longer, not unbounded
)

// DefaultLabelImportLimit is the default largest body of POST /v1/labels (10 MiB).
const DefaultLabelImportLimit = 10 << 20

type labelBody struct {
	Label string   `json:"label"`
	Tags  []string `json:"tags"`
}

type labelJSON struct {
	DecisionID string    `json:"decision_id"`
	Label      string    `json:"label"`
	Tags       []string  `json:"tags"`
	CreatedAt  time.Time `json:"created_at"`
	Actor      string    `json:"actor"`
}

// labelDecision answers POST /v1/decisions/{id}/label: 201 when the label is new on the
// decision, 200 when it replaced the tags of the same label.
func (s *Server) labelDecision(c *fiber.Ctx) error {
	id := c.Params("id")
	if !validDecisionID(id) {
		return problemf(fiber.StatusNotFound, CodeNotFound, "no decision with this id")
	}
	if u, err := uuid.Parse(id); err == nil {
		id = u.String() // decision ids are stored in canonical (lower-case) form
	} else {
		id = string([]byte(id))
	}
	var body labelBody
	if err := decodeStrict(c, &body); err != nil {
		return err
	}
	var fields []FieldError
	if fe := checkLabel(body.Label); fe != "" {
		fields = append(fields, FieldError{Pointer: "/label", Detail: fe})
	}
	if len(body.Tags) > MaxLabelTags {
		fields = append(fields, FieldError{Pointer: "/tags", Detail: fmt.Sprintf("at most %d tags", MaxLabelTags)})
	} else {
		for i, t := range body.Tags {
			if !store.ValidLabelTag(t) {
				fields = append(fields, FieldError{Pointer: "/tags/" + strconv.Itoa(i), Detail: tagRule})
			}
		}
	}
	if len(fields) > 0 {
		return &apiError{status: fiber.StatusBadRequest, code: CodeInvalidRequest, detail: "the request has invalid fields", fields: fields}
	}
	l := store.OutcomeLabel{DecisionID: id, Label: body.Label, Tags: distinct(body.Tags), CreatedAt: time.Now().UTC().Truncate(time.Microsecond), Actor: actor(c)}
	created, err := s.deps.Store.PutLabels(c.UserContext(), []store.OutcomeLabel{l}, requestID(c))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return problemf(fiber.StatusNotFound, CodeNotFound, "no decision with this id")
	case err != nil:
		return storeProblem(err)
	}
	status := fiber.StatusOK
	if created > 0 {
		status = fiber.StatusCreated
	}
	if l.Tags == nil {
		l.Tags = []string{}
	}
	return c.Status(status).JSON(labelJSON{DecisionID: l.DecisionID, Label: l.Label, Tags: l.Tags, CreatedAt: l.CreatedAt, Actor: l.Actor})
}

// importLabels answers POST /v1/labels: a text/csv body of decision_id,label,tags rows,
// checked whole, then stored in chunks (store.ImportLabels). It is registered outside the /v1 group, so it authenticates
// itself and holds the body to LabelImportLimit instead of BodyLimit.
func (s *Server) importLabels(c *fiber.Ctx) error {
	if len(c.Request().Body()) > s.cfg.LabelImportLimit {
		return problemf(fiber.StatusRequestEntityTooLarge, CodeBodyTooLarge, "the CSV exceeds %d bytes; split it", s.cfg.LabelImportLimit)
	}
	if mt, _, err := mime.ParseMediaType(c.Get(fiber.HeaderContentType)); err != nil || mt != "text/csv" {
		return problemf(fiber.StatusUnsupportedMediaType, CodeUnsupportedMedia, "send the body as text/csv")
	}
	labels, lines, err := parseLabelsCSV(bytes.NewReader(c.Body()), actor(c))
	var ce *LabelsCSVError
	if errors.As(err, &ce) {
		return &apiError{status: fiber.StatusBadRequest, code: CodeInvalidCSV, detail: "the CSV has an invalid line; nothing was imported",
			fields: []FieldError{{Pointer: "/line/" + strconv.Itoa(ce.Line), Detail: ce.Reason}}}
	}
	if err != nil {
		return err
	}
	created, err := store.ImportLabels(c.UserContext(), s.deps.Store, labels, requestID(c), store.LabelImportChunk)
	var partial *store.ImportError
	switch {
	case errors.As(err, &partial):
		// Chunks already committed stay: say how far it got, and that sending the same
		// file again is safe.
		ae := &apiError{status: fiber.StatusServiceUnavailable, code: CodeUnavailable, cause: err}
		if errors.Is(err, store.ErrNotFound) { // deleted (retention) after the check
			ae.status, ae.code = fiber.StatusUnprocessableEntity, CodeUnknownDecision
		}
		ae.detail = fmt.Sprintf("%d of %d labels were stored before the store failed; send the same CSV again to import the rest (stored labels are replaced, not duplicated)", partial.Stored, partial.Total)
		return ae
	case errors.Is(err, store.ErrNotFound):
		ae := &apiError{status: fiber.StatusUnprocessableEntity, code: CodeUnknownDecision,
			detail: "a line names a decision that does not exist; nothing was imported", cause: err}
		if line := UnknownDecisionLine(labels, lines, err); line > 0 {
			ae.fields = []FieldError{{Pointer: "/line/" + strconv.Itoa(line), Detail: "no decision with this id"}}
		}
		return ae
	case err != nil:
		return storeProblem(err)
	}
	return c.JSON(fiber.Map{"imported": len(labels), "created": created})
}

// UnknownDecisionLine returns the first CSV line of the decision a store.ErrNotFound from
// PutLabels names (quoted, as both stores do), or 0.
func UnknownDecisionLine(labels []store.OutcomeLabel, lines []int, err error) int {
	if err == nil {
		return 0
	}
	msg := err.Error()
	for i, l := range labels {
		if strings.Contains(msg, strconv.Quote(l.DecisionID)) {
			return lines[i]
		}
	}
	return 0
}

// LabelsCSVError is a CSV label file's first invalid line. Reason names the rule broken,
// never the line's content.
type LabelsCSVError struct {
	Line   int // 1-based, counting the header
	Reason string
}

func (e *LabelsCSVError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Reason) }

// ParseLabelsCSV reads outcome labels from CSV: a header row decision_id,label,tags, then
// one label per row; tags are separated by '|' inside their field and may be empty. Every
// label gets actor and no creation time (the store stamps it). A (decision, label) pair
// may appear once. It returns a *LabelsCSVError naming the first invalid line, including
// a malformed or missing header; a file with a header and no rows gives no labels.
func ParseLabelsCSV(r io.Reader, actor string) ([]store.OutcomeLabel, error) {
	labels, _, err := parseLabelsCSV(r, actor)
	return labels, err
}

// ParseLabelsCSVLines is ParseLabelsCSV, also returning each label's line in the file (for
// UnknownDecisionLine).
func ParseLabelsCSVLines(r io.Reader, actor string) ([]store.OutcomeLabel, []int, error) {
	return parseLabelsCSV(r, actor)
}

// parseLabelsCSV is ParseLabelsCSV, also returning each label's line.
func parseLabelsCSV(r io.Reader, actor string) ([]store.OutcomeLabel, []int, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = 3
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, nil, &LabelsCSVError{Line: 1, Reason: "missing header row decision_id,label,tags"}
	}
	if err != nil {
		return nil, nil, csvError(err)
	}
	if h := strings.TrimPrefix(header[0], "\ufeff"); h != "decision_id" || header[1] != "label" || header[2] != "tags" {
		return nil, nil, &LabelsCSVError{Line: 1, Reason: "the header row must be decision_id,label,tags"}
	}
	var (
		out   []store.OutcomeLabel
		lines []int
		seen  = map[[2]string]int{}
	)
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return out, lines, nil
		}
		if err != nil {
			return nil, nil, csvError(err)
		}
		line, _ := cr.FieldPos(0)
		id, label := rec[0], rec[1]
		if !validDecisionID(id) {
			return nil, nil, &LabelsCSVError{Line: line, Reason: fmt.Sprintf("decision_id must be 1 to %d printable characters", maxDecisionIDLen)}
		}
		if fe := checkLabel(label); fe != "" {
			return nil, nil, &LabelsCSVError{Line: line, Reason: "label " + fe}
		}
		var tags []string
		if rec[2] != "" {
			tags = strings.Split(rec[2], "|")
			if len(tags) > MaxLabelTags {
				return nil, nil, &LabelsCSVError{Line: line, Reason: fmt.Sprintf("at most %d tags", MaxLabelTags)}
			}
			for _, t := range tags {
				if !store.ValidLabelTag(t) {
					return nil, nil, &LabelsCSVError{Line: line, Reason: "each tag " + tagRule + ", tags separated by |"}
				}
			}
		}
		key := [2]string{id, label}
		if prev, dup := seen[key]; dup {
			return nil, nil, &LabelsCSVError{Line: line, Reason: fmt.Sprintf("the same decision and label as line %d", prev)}
		}
		// ReuseRecord: the strings of rec are fresh per record (only the slice is reused).
		seen[key] = line
		out = append(out, store.OutcomeLabel{DecisionID: id, Label: label, Tags: distinct(tags), Actor: actor})
		lines = append(lines, line)
	}
}

func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		line := pe.StartLine // where the broken record starts
		if line == 0 {
			line = pe.Line
		}
		return &LabelsCSVError{Line: line, Reason: "not valid CSV: " + pe.Err.Error()}
	}
	return err
}

const tagRule = "must be 1 to 64 characters of A-Z a-z 0-9 _ : . -"

// checkLabel returns why label is not a known outcome label, or "".
func checkLabel(label string) string {
	if slices.Contains(store.Labels, label) {
		return ""
	}
	return "must be one of " + strings.Join(store.Labels, ", ")
}

// distinct returns tags without repeats, in their first order: a tag is a set member.
func distinct(tags []string) []string {
	out := tags[:0:0]
	for _, t := range tags {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	if tags == nil {
		return nil
	}
	return out
}

func validDecisionID(id string) bool {
	return id != "" && len(id) <= maxDecisionIDLen && utf8.ValidString(id) && printable(id)
}
