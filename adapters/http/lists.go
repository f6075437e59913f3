package http

import (
	"errors"
	"fmt"
	"net/url"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/verdict-engine/verdict/signals"
	"github.com/verdict-engine/verdict/store"
)

type listEntryBody struct {
	Reason string `json:"reason"`
}

type listEntryJSON struct {
	Value     string    `json:"value"`
	Reason    string    `json:"reason,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	Actor     string    `json:"actor"`
}

// listParams validates the list name and (URL-decoded) value of a list route.
func listParams(c *fiber.Ctx, withValue bool) (list, value string, err error) {
	list = c.Params("list")
	if _, err := signals.ListField(list); err != nil {
		return "", "", problemf(fiber.StatusBadRequest, CodeInvalidList, "list name must be <name>_<user|device|ip|country|email>, lowercase (e.g. deny_ip)")
	}
	list = string([]byte(list))
	if !withValue {
		return list, "", nil
	}
	raw, uerr := url.PathUnescape(c.Params("value"))
	if uerr != nil {
		return "", "", problemf(fiber.StatusBadRequest, CodeInvalidList, "the value is not correctly URL-encoded")
	}
	value, verr := signals.NormalizeListValue(list, raw)
	var hb *signals.HostBitsError
	if errors.As(verr, &hb) {
		// The caller's own value, with the two forms it may have meant: URL-encoded, as
		// the route takes them.
		return "", "", &apiError{status: fiber.StatusBadRequest, code: CodeInvalidList, cause: verr,
			detail: fmt.Sprintf("%s has host bits set: for the /%d range use %s (%s in the URL), for the one address %s",
				hb.Value, hb.Prefix.Bits(), hb.Prefix, url.PathEscape(hb.Prefix.String()), hb.Addr)}
	}
	if verr != nil {
		return "", "", &apiError{status: fiber.StatusBadRequest, code: CodeInvalidList, detail: publicListError(list), cause: verr}
	}
	return list, value, nil
}

func publicListError(list string) string {
	f, _ := signals.ListField(list)
	switch f {
	case signals.FieldIP:
		return "the value must be an IP address or a CIDR prefix (URL-encode the /)"
	case signals.FieldCountry:
		return "the value must be an ISO 3166 alpha-2 country code"
	case signals.FieldEmail:
		return "the value must be a domain name (an email list holds domains, such as mailinator.com; internationalised names in their xn-- form)"
	}
	return "the value must be printable text of 1 to 256 bytes (UTF-8)"
}

func (s *Server) putListEntry(c *fiber.Ctx) error {
	list, value, err := listParams(c, true)
	if err != nil {
		return err
	}
	var body listEntryBody
	if len(c.Body()) > 0 {
		if err := decodeStrict(c, &body); err != nil { // unknown fields refused, as on every route
			return err
		}
		// Characters, as openapi.json's maxLength counts them, not UTF-8 bytes.
		if utf8.RuneCountInString(body.Reason) > 500 || !printable(body.Reason) {
			return &apiError{status: fiber.StatusBadRequest, code: CodeInvalidRequest, detail: "the request has invalid fields",
				fields: []FieldError{{Pointer: "/reason", Detail: "must be at most 500 printable characters"}}}
		}
	}
	e := store.ListEntry{List: list, Value: value, Reason: body.Reason, CreatedAt: time.Now().UTC().Truncate(time.Microsecond), Actor: actor(c)}
	created, err := s.deps.Store.PutListEntry(c.UserContext(), e, requestID(c))
	if err != nil {
		return storeProblem(err)
	}
	s.refreshLists(c)
	status := fiber.StatusOK
	if created {
		status = fiber.StatusCreated
	}
	return c.Status(status).JSON(fiber.Map{"list": list, "entry": listEntryJSON{Value: value, Reason: e.Reason, CreatedAt: e.CreatedAt, Actor: e.Actor}})
}

func (s *Server) deleteListEntry(c *fiber.Ctx) error {
	list, value, err := listParams(c, true)
	if err != nil {
		return err
	}
	err = s.deps.Store.DeleteListEntry(c.UserContext(), list, value, actor(c), requestID(c))
	if errors.Is(err, store.ErrNotFound) {
		return problemf(fiber.StatusNotFound, CodeNotFound, "the value is not on this list")
	}
	if err != nil {
		return storeProblem(err)
	}
	s.refreshLists(c)
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Server) getList(c *fiber.Ctx) error {
	list, _, err := listParams(c, false)
	if err != nil {
		return err
	}
	entries, err := s.deps.Store.ListEntries(c.UserContext(), list)
	if err != nil {
		return storeProblem(err)
	}
	out := make([]listEntryJSON, len(entries))
	for i, e := range entries {
		out[i] = listEntryJSON{Value: e.Value, Reason: e.Reason, CreatedAt: e.CreatedAt.UTC(), Actor: e.Actor}
	}
	return c.JSON(fiber.Map{"list": list, "entries": out})
}

// refreshLists makes a list change visible to this replica's next decision at once;
// other replicas pick it up on their next poll.
func (s *Server) refreshLists(c *fiber.Ctx) {
	if err := s.deps.Lists.Refresh(c.UserContext()); err != nil {
		s.log.Warn("refresh lists after change", "request_id", requestID(c), "err", err)
	}
}

func storeProblem(err error) error {
	switch {
	case errors.Is(err, store.ErrUnavailable):
		return &apiError{status: fiber.StatusServiceUnavailable, code: CodeUnavailable, detail: "the store is unavailable; retry", cause: err}
	case errors.Is(err, store.ErrInvalidRecord):
		// The record came from the request: a value the handler's checks let through but the
		// store refuses (text that is not valid UTF-8, say) is still the caller's input.
		return &apiError{status: fiber.StatusBadRequest, code: CodeInvalidRequest, detail: "the request holds a value that cannot be stored (text must be valid UTF-8 without NUL bytes)", cause: err}
	}
	return err
}
