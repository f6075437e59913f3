package onfido

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/verdict-engine/verdict/adapters/providers"
	"github.com/verdict-engine/verdict/store"
)

// SignatureHeader carries the hex HMAC-SHA256 of the raw body, keyed with the webhook's
// token.
const SignatureHeader = "X-SHA2-Signature"

// VerifyWebhook checks X-SHA2-Signature (hex HMAC-SHA256 of the raw body under each
// configured webhook token, constant time) and only then parses the body. Onfido signs no
// timestamp, so now is unused and replays are caught by Event.ID, a digest of what
// identifies the delivery. Errors wrap providers.ErrMissingSignature (no or blank header),
// providers.ErrBadSignature (no match, or no secret configured) or
// providers.ErrMalformedPayload.
func (p *Provider) VerifyWebhook(h providers.Header, body []byte, now time.Time) (providers.Event, error) {
	sig := strings.TrimSpace(h.Get(SignatureHeader))
	if sig == "" {
		return providers.Event{}, fmt.Errorf("onfido webhook: %w: %s", providers.ErrMissingSignature, SignatureHeader)
	}
	if len(p.cfg.WebhookSecrets) == 0 {
		return providers.Event{}, fmt.Errorf("onfido webhook: %w: no webhook secret configured", providers.ErrBadSignature)
	}
	if !providers.MatchHexHMAC(providers.SHA256, p.cfg.WebhookSecrets, body, sig) {
		return providers.Event{}, fmt.Errorf("onfido webhook: %w", providers.ErrBadSignature)
	}
	return parseEvent(body)
}

// webhookBody is Onfido's webhook envelope. resource (sent with workflow_run and
// workflow_task events) is decoded only for ids, the run's status and its reasons: its
// input and output may carry personal data and are never read.
type webhookBody struct {
	Payload *struct {
		ResourceType string `json:"resource_type"`
		Action       string `json:"action"`
		Object       *struct {
			ID          string `json:"id"`
			Status      string `json:"status"`
			Result      string `json:"result"` // not in Onfido's schema; read if present
			StartedAt   string `json:"started_at_iso8601"`
			CompletedAt string `json:"completed_at_iso8601"`
		} `json:"object"`
		Resource *struct {
			ID             string   `json:"id"`
			WorkflowRunID  string   `json:"workflow_run_id"`
			Status         string   `json:"status"`
			Reasons        []string `json:"reasons"`
			CustomerUserID string   `json:"customer_user_id"`
			UpdatedAt      string   `json:"updated_at"`
		} `json:"resource"`
	} `json:"payload"`
}

var actionRE = regexp.MustCompile(`^[a-z0-9_]{1,40}(\.[a-z0-9_]{1,40})?$`)

// parseEvent maps a verified webhook body to an Event. It returns an error wrapping
// providers.ErrMalformedPayload for a body that is not Onfido's JSON envelope or whose
// payload.object.id is missing or not an id.
func parseEvent(body []byte) (providers.Event, error) {
	var wb webhookBody
	if err := json.Unmarshal(body, &wb); err != nil {
		return providers.Event{}, fmt.Errorf("onfido webhook: %w: invalid JSON", providers.ErrMalformedPayload)
	}
	pl := wb.Payload
	if pl == nil || pl.Object == nil || !validID(pl.Object.ID) {
		return providers.Event{}, fmt.Errorf("onfido webhook: %w: missing payload.object.id", providers.ErrMalformedPayload)
	}
	obj := pl.Object
	ev := providers.Event{
		ID:          eventID(pl.ResourceType, pl.Action, obj.ID, obj.Status, obj.StartedAt, obj.CompletedAt),
		Type:        pl.Action,
		ProviderRef: obj.ID,
		OccurredAt:  parseTime(obj.CompletedAt),
	}
	if !actionRE.MatchString(ev.Type) {
		ev.Type = "unknown"
	}
	if ev.OccurredAt.IsZero() {
		ev.OccurredAt = parseTime(obj.StartedAt)
	}
	res := pl.Resource
	if res != nil {
		if ev.OccurredAt.IsZero() {
			ev.OccurredAt = parseTime(res.UpdatedAt)
		}
		if validID(res.CustomerUserID) {
			ev.UserID = res.CustomerUserID
		}
	}

	switch pl.Action {
	case "workflow_run.completed":
		status := obj.Status
		if status == "" && res != nil {
			status = res.Status
		}
		ev.Status, ev.ReasonCodes = mapRunStatus(status)
		switch ev.Status {
		case store.StatusApproved, store.StatusRejected, store.StatusPendingReview, store.StatusExpired:
			if res != nil {
				ev.ReasonCodes = appendCodes(ev.ReasonCodes, normalizeReasons(res.Reasons)...)
			}
		default:
			// A completed run whose status we cannot read: ask Status.
			ev.Status, ev.ReasonCodes, ev.Fetch = "", nil, true
		}
	case "workflow_task.started", "workflow_task.completed":
		// Tasks are steps of a run: the session is the run. Nothing to apply.
		if res != nil && validID(res.WorkflowRunID) {
			ev.ProviderRef = res.WorkflowRunID
		}
	case "check.started":
		ev.Status = store.StatusSubmitted
	case "check.form_completed":
		ev.Status = store.StatusSubmitted
	case "check.withdrawn":
		ev.Status, ev.ReasonCodes = store.StatusExpired, []string{"CHECK_WITHDRAWN"}
	case "check.reopened":
		ev.Fetch = true
	case "check.completed":
		// Onfido's check.completed carries no result: the caller asks Status. Should a
		// payload carry one, it is used.
		switch obj.Result {
		case "clear":
			ev.Status = store.StatusApproved
		case "consider":
			ev.Status, ev.ReasonCodes = store.StatusPendingReview, []string{"CHECK_CONSIDER"}
		default:
			ev.Fetch = true
		}
	}
	// Every other action (report.*, audit_log.created, watchlist_monitor.matches_updated,
	// workflow_timeline_file.created, workflow_run_evidence_folder.created, ...) is
	// acknowledged with nothing to apply.
	return ev, nil
}

// eventID is a stable digest of what identifies a delivery, for de-duplication: Onfido
// sends no event id. Each field is length-prefixed so no two tuples share an encoding.
func eventID(fields ...string) string {
	h := sha256.New()
	var n [8]byte
	for _, f := range fields {
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	return "onfido:" + hex.EncodeToString(h.Sum(nil)[:16])
}
