package http

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/gofiber/fiber/v2"
)

// Problem is an RFC 9457 problem details object, with Verdict's extensions: a stable
// machine-readable code, the request id, and per-field errors.
type Problem struct {
	Type      string       `json:"type"`
	Title     string       `json:"title"`
	Status    int          `json:"status"`
	Detail    string       `json:"detail,omitempty"`
	Instance  string       `json:"instance,omitempty"`
	Code      string       `json:"code"`
	RequestID string       `json:"request_id,omitempty"`
	Errors    []FieldError `json:"errors,omitempty"`
}

// FieldError names one invalid field by JSON pointer.
type FieldError struct {
	Pointer string `json:"pointer"`
	Detail  string `json:"detail"`
}

// Stable problem codes. Clients may switch on them; they never change meaning.
const (
	CodeMalformedJSON      = "malformed_json"
	CodeInvalidRequest     = "invalid_request"
	CodeUnknownAction      = "unknown_action"
	CodeBodyTooLarge       = "body_too_large"
	CodeUnsupportedMedia   = "unsupported_media_type"
	CodeUnauthorized       = "unauthorized"
	CodeForbidden          = "forbidden"
	CodeNotFound           = "not_found"
	CodeMethodNotAllowed   = "method_not_allowed"
	CodeIdempotencyReused  = "idempotency_key_reused"
	CodeIdempotencyInvalid = "invalid_idempotency_key"
	CodeInvalidList        = "invalid_list_entry"
	CodeInvalidCSV         = "invalid_csv"
	CodeUnknownDecision    = "unknown_decision"
	CodeUnavailable        = "unavailable"
	CodeInternal           = "internal"
)

// apiError is an error with a public face. Handlers return it; the one error handler
// turns it (and anything else) into a problem+json answer.
type apiError struct {
	status int
	code   string
	detail string
	fields []FieldError
	cause  error // logged, never sent
}

func (e *apiError) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.code, e.detail, e.cause)
	}
	return e.code + ": " + e.detail
}

func (e *apiError) Unwrap() error { return e.cause }

func problemf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, detail: fmt.Sprintf(format, args...)}
}

var titles = map[string]string{
	CodeMalformedJSON:       "Malformed JSON",
	CodeInvalidRequest:      "Invalid request",
	CodeUnknownAction:       "Unknown action",
	CodeBodyTooLarge:        "Request body too large",
	CodeUnsupportedMedia:    "Unsupported media type",
	CodeUnauthorized:        "Unauthorized",
	CodeForbidden:           "Forbidden",
	CodeNotFound:            "Not found",
	CodeMethodNotAllowed:    "Method not allowed",
	CodeIdempotencyReused:   "Idempotency key reused",
	CodeIdempotencyInvalid:  "Invalid idempotency key",
	CodeInvalidList:         "Invalid list entry",
	CodeInvalidCSV:          "Invalid CSV",
	CodeUnknownDecision:     "Unknown decision",
	CodeUnavailable:         "Service unavailable",
	CodeInternal:            "Internal error",
	CodeUnknownProvider:     "Unknown provider",
	CodeProviderUnavailable: "Identity provider unavailable",
	CodeConsentRequired:     "Consent required",
	CodeInvalidState:        "Not allowed in the current state",
	CodeEvidenceMissing:     "Evidence not uploaded",
	CodeEvidenceMismatch:    "Evidence does not match",
	CodeUploadURLInvalid:    "Upload URL invalid or expired",
	CodeWebhookRejected:     "Webhook rejected",
	CodeUnknownSession:      "Unknown verification session",
	CodeReviewClaimed:       "Review item claimed",
	CodeInvalidPolicy:       "Invalid policy",
	CodeUnknownVersion:      "Unknown policy version",
	CodeSelfApproval:        "Approver is the requester",
}

// toProblem is the one place where errors become HTTP answers. Internal errors keep
// their chain out of the answer: the detail is a fixed public sentence.
func toProblem(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var fe *fiber.Error
	if errors.As(err, &fe) {
		switch fe.Code {
		case fiber.StatusRequestHeaderFieldsTooLarge:
			return problemf(fe.Code, CodeInvalidRequest, "the request headers exceed the size limit")
		case fiber.StatusRequestEntityTooLarge:
			return problemf(fe.Code, CodeBodyTooLarge, "the request body exceeds the size limit")
		case fiber.StatusNotFound:
			return problemf(fe.Code, CodeNotFound, "no such resource")
		case fiber.StatusMethodNotAllowed:
			return problemf(fe.Code, CodeMethodNotAllowed, "method not allowed on this resource")
		case fiber.StatusBadRequest:
			return problemf(fe.Code, CodeInvalidRequest, "the request could not be read")
		case fiber.StatusUnsupportedMediaType:
			return problemf(fe.Code, CodeUnsupportedMedia, "send application/json")
		case fiber.StatusServiceUnavailable:
			return problemf(fe.Code, CodeUnavailable, "the service is unavailable")
		}
		if fe.Code >= 400 && fe.Code < 500 {
			return problemf(fe.Code, CodeInvalidRequest, "%s", http.StatusText(fe.Code))
		}
	}
	return &apiError{status: http.StatusInternalServerError, code: CodeInternal, detail: "an internal error occurred; quote the request_id to the operator", cause: err}
}

func writeProblem(c *fiber.Ctx, ae *apiError) error {
	p := Problem{
		Type:      "urn:verdict:problem:" + ae.code,
		Title:     titles[ae.code],
		Status:    ae.status,
		Detail:    ae.detail,
		Instance:  "urn:verdict:request:" + requestID(c), // never the path: it can carry list values
		Code:      ae.code,
		RequestID: requestID(c),
		Errors:    ae.fields,
	}
	if p.Title == "" {
		p.Title = http.StatusText(ae.status)
	}
	b, _ := json.Marshal(p)
	c.Status(ae.status)
	c.Set(fiber.HeaderContentType, "application/problem+json")
	return c.Send(b)
}
