package sumsub

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/verdict-engine/verdict/adapters/providers"
)

// Webhook headers and digest algorithms (X-Payload-Digest-Alg values).
const (
	HeaderDigest    = "X-Payload-Digest"
	HeaderDigestAlg = "X-Payload-Digest-Alg"

	AlgSHA1   = "HMAC_SHA1_HEX"
	AlgSHA256 = "HMAC_SHA256_HEX" // Sumsub's default, assumed when the header is absent
	AlgSHA512 = "HMAC_SHA512_HEX"
)

var digestAlgs = map[string]string{
	AlgSHA1:   providers.SHA1,
	AlgSHA256: providers.SHA256,
	AlgSHA512: providers.SHA512,
}

// maxPayload bounds the body parsed; Sumsub's webhooks are a few hundred bytes.
const maxPayload = 1 << 20

// VerifyWebhook checks X-Payload-Digest, the hex HMAC of the raw body under a webhook secret
// with the algorithm named by X-Payload-Digest-Alg (HMAC_SHA1_HEX, HMAC_SHA256_HEX or
// HMAC_SHA512_HEX; HMAC_SHA256_HEX when the header is absent), in constant time against every
// configured secret, and only then parses the body. A missing digest wraps
// providers.ErrMissingSignature; an unknown algorithm, a mismatch or no configured secret wrap
// providers.ErrBadSignature; a body that is not a Sumsub applicant webhook wraps
// providers.ErrMalformedPayload. Sumsub signs no timestamp; an event without createdAtMs has
// no OccurredAt (it is applied whatever the session's last event time); replays are
// recognised by Event.ID.
func (p *Provider) VerifyWebhook(h providers.Header, body []byte, _ time.Time) (providers.Event, error) {
	digest := strings.TrimSpace(h.Get(HeaderDigest))
	if digest == "" {
		return providers.Event{}, fmt.Errorf("sumsub webhook: %s: %w", HeaderDigest, providers.ErrMissingSignature)
	}
	algName := strings.ToUpper(strings.TrimSpace(h.Get(HeaderDigestAlg)))
	if algName == "" {
		algName = AlgSHA256
	}
	alg, ok := digestAlgs[algName]
	if !ok {
		return providers.Event{}, fmt.Errorf("sumsub webhook: unsupported %s: %w", HeaderDigestAlg, providers.ErrBadSignature)
	}
	if len(p.cfg.WebhookSecrets) == 0 {
		return providers.Event{}, fmt.Errorf("sumsub webhook: no secret: %w: %w", providers.ErrNotConfigured, providers.ErrBadSignature)
	}
	if !providers.MatchHexHMAC(alg, p.cfg.WebhookSecrets, body, digest) {
		return providers.Event{}, fmt.Errorf("sumsub webhook: %w", providers.ErrBadSignature)
	}
	ev, err := parsePayload(body)
	if err != nil {
		return providers.Event{}, fmt.Errorf("sumsub webhook: %w", err)
	}
	return ev, nil
}

// payload is the part of a Sumsub applicant webhook the adapter reads. Free-text fields
// (reviewResult.moderationComment, .clientComment) are deliberately absent: they are never
// decoded, so they cannot reach an Event or a log.
type payload struct {
	ApplicantID    string        `json:"applicantId"`
	InspectionID   string        `json:"inspectionId"`
	CorrelationID  string        `json:"correlationId"`
	ExternalUserID string        `json:"externalUserId"`
	LevelName      string        `json:"levelName"`
	Type           string        `json:"type"`
	ReviewStatus   string        `json:"reviewStatus"`
	ReviewResult   *reviewResult `json:"reviewResult"`
	CreatedAtMs    string        `json:"createdAtMs"`
	CreatedAt      string        `json:"createdAt"`
	SandboxMode    bool          `json:"sandboxMode"`
}

// Bounds on identifiers copied into an Event.
const maxIDLen = 256

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{providers.ErrMalformedPayload}, args...)...)
}

// parsePayload turns a verified body into an Event. Errors wrap providers.ErrMalformedPayload
// and quote no body content.
func parsePayload(body []byte) (providers.Event, error) {
	if len(body) > maxPayload {
		return providers.Event{}, malformed("body over %d bytes", maxPayload)
	}
	var pl payload
	if err := json.Unmarshal(body, &pl); err != nil {
		return providers.Event{}, malformed("not a JSON object of the expected shape")
	}
	if err := checkID("applicantId", pl.ApplicantID, true); err != nil {
		return providers.Event{}, err
	}
	if err := checkID("type", pl.Type, true); err != nil {
		return providers.Event{}, err
	}
	for _, f := range []struct{ name, v string }{
		{"externalUserId", pl.ExternalUserID}, {"correlationId", pl.CorrelationID},
		{"reviewStatus", pl.ReviewStatus}, {"levelName", pl.LevelName}, {"inspectionId", pl.InspectionID},
	} {
		if err := checkID(f.name, f.v, false); err != nil {
			return providers.Event{}, err
		}
	}
	var rr reviewResult
	if pl.ReviewResult != nil {
		rr = *pl.ReviewResult
	}
	created := pl.CreatedAtMs
	if created == "" {
		created = pl.CreatedAt
	}
	// Without a time of Sumsub's own the event is not ordered against others: dating it
	// now would make a later delivery of an earlier-dated result look stale.
	var occurred time.Time
	if created != "" {
		t, err := parseCreatedAt(created)
		if err != nil {
			return providers.Event{}, malformed("createdAtMs is not yyyy-MM-dd HH:mm:ss.fff")
		}
		occurred = t
	}
	status, fetch := eventStatus(pl.Type, rr.ReviewAnswer, rr.ReviewRejectType)
	ev := providers.Event{
		ID:          eventID(pl, rr, created),
		Type:        pl.Type,
		ProviderRef: pl.ApplicantID,
		UserID:      pl.ExternalUserID,
		Status:      status,
		OccurredAt:  occurred,
		Fetch:       fetch,
	}
	switch {
	case pl.Type == "applicantReviewed" && rr.ReviewAnswer == answerRed:
		ev.ReasonCodes = reasonCodes(rr.RejectLabels)
	case pl.Type == "applicantReset":
		ev.ReasonCodes = []string{codeApplicantReset}
	}
	return ev, nil
}

// codeApplicantReset is the reason of a session whose applicant Sumsub reset.
const codeApplicantReset = "APPLICANT_RESET"

// checkID rejects identifiers that are too long or carry control or invalid characters, so
// nothing odd reaches records and logs.
func checkID(name, v string, required bool) error {
	if v == "" {
		if required {
			return malformed("%s is missing", name)
		}
		return nil
	}
	if len(v) > maxIDLen {
		return malformed("%s is over %d bytes", name, maxIDLen)
	}
	for _, r := range v {
		if r == unicode.ReplacementChar || unicode.IsControl(r) {
			return malformed("%s has invalid characters", name)
		}
	}
	return nil
}

// eventID is a stable digest of what identifies a delivery. Sumsub sends no event id; its
// correlationId is documented as the event's unique identifier and a resent webhook repeats
// the body, so it is included with the applicant, type, review state and createdAtMs. A
// replay of the same body yields the same id; two events differing in any of these do not.
func eventID(pl payload, rr reviewResult, created string) string {
	h := sha256.New()
	var n [8]byte
	for _, f := range []string{
		pl.ApplicantID, pl.Type, pl.ReviewStatus, rr.ReviewAnswer, rr.ReviewRejectType, created, pl.CorrelationID,
	} {
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// createdAtLayout is Sumsub's webhook time format, yyyy-MM-dd HH:mm:ss.fff in UTC; the
// fraction is optional when parsing.
const createdAtLayout = "2006-01-02 15:04:05.999999999"

// parseCreatedAt parses a webhook's createdAtMs as UTC.
func parseCreatedAt(s string) (time.Time, error) {
	t, err := time.ParseInLocation(createdAtLayout, s, time.UTC)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

// parseAPIDate parses the API's dates: "2024-07-09 10:24:26+0000", or the webhook format.
func parseAPIDate(s string) (time.Time, error) {
	if t, err := time.Parse("2006-01-02 15:04:05.999999999-0700", s); err == nil {
		return t.UTC(), nil
	}
	return parseCreatedAt(s)
}
