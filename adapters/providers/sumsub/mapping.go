package sumsub

import (
	"strings"

	"github.com/verdict-engine/verdict/store"
)

// Sumsub review answers and reject types (reviewResult.reviewAnswer, .reviewRejectType).
const (
	answerGreen = "GREEN"
	answerRed   = "RED"
	rejectFinal = "FINAL"
	rejectRetry = "RETRY"
)

// reviewOutcome maps a completed review to a canonical status. GREEN is approved; RED is
// rejected when FINAL and needs_resubmission when RETRY. A RED answer without a known reject
// type goes to pending_review: Sumsub documents only FINAL and RETRY, and neither approving
// nor closing the session for good is safe on a value we do not understand. ok is false when
// the answer itself is missing or unknown.
func reviewOutcome(answer, rejectType string) (status string, ok bool) {
	switch answer {
	case answerGreen:
		return store.StatusApproved, true
	case answerRed:
		switch rejectType {
		case rejectFinal:
			return store.StatusRejected, true
		case rejectRetry:
			return store.StatusNeedsResubmission, true
		}
		return store.StatusPendingReview, true
	}
	return "", false
}

// eventStatus maps a webhook's type (and, for applicantReviewed, its review result) to a
// canonical status. applicantReset (status back to init, every document deactivated and
// every completed step reset: the person must go through verification again) is
// needs_resubmission. Types that say nothing about the applicant's own verification (tags,
// personal info, level changes, applicant actions, video ident, deactivation, ...) map to "". fetch is true for an applicantReviewed whose answer is missing or unknown: the
// session changed but the payload does not say how.
func eventStatus(typ, answer, rejectType string) (status string, fetch bool) {
	switch typ {
	case "applicantCreated":
		return store.StatusInitiated, false
	case "applicantPending", "applicantPrechecked":
		return store.StatusSubmitted, false
	case "applicantOnHold":
		return store.StatusPendingReview, false
	case "applicantReset":
		return store.StatusNeedsResubmission, false
	case "applicantReviewed":
		if s, ok := reviewOutcome(answer, rejectType); ok {
			return s, false
		}
		return "", true
	}
	return "", false
}

// reviewStatusToCanonical maps the applicant's reviewStatus (GET .../status) to a canonical
// status. Only "completed" consults the review answer (Sumsub: reviewAnswer is meaningful only
// when reviewStatus is completed).
func reviewStatusToCanonical(reviewStatus, answer, rejectType string) string {
	switch reviewStatus {
	case "init":
		return store.StatusInitiated
	case "pending", "prechecked", "queued", "awaitingService":
		return store.StatusSubmitted
	case "onHold":
		return store.StatusPendingReview
	case "completed":
		s, _ := reviewOutcome(answer, rejectType)
		return s
	}
	return ""
}

// labelCodes maps Sumsub rejectLabels to our reason codes. Labels not listed become
// SUMSUB_<LABEL>. Keep docs/providers/sumsub.md in step with this table.
var labelCodes = map[string]string{
	// Fraud and tampering.
	"FORGERY":             "DOCUMENT_FORGERY",
	"DOCUMENT_TEMPLATE":   "DOCUMENT_FORGERY",
	"GRAPHIC_EDITOR":      "DOCUMENT_TAMPERED",
	"FRAUDULENT_PATTERNS": "FRAUD_SUSPECTED",
	"FRAUDULENT_LIVENESS": "LIVENESS_FRAUD",
	"SPAM":                "SPAM",
	// Face and selfie.
	"SELFIE_MISMATCH":   "FACE_MISMATCH",
	"BAD_FACE_MATCHING": "FACE_MISMATCH",
	"BAD_SELFIE":        "SELFIE_UNUSABLE",
	"BAD_VIDEO_SELFIE":  "SELFIE_UNUSABLE",
	"SELFIE_WITH_PAPER": "SELFIE_UNUSABLE",
	// Document content.
	"EXPIRATION_DATE":              "DOCUMENT_EXPIRED",
	"DOCUMENT_PAGE_MISSING":        "DOCUMENT_PAGE_MISSING",
	"FRONT_SIDE_MISSING":           "DOCUMENT_PAGE_MISSING",
	"BACK_SIDE_MISSING":            "DOCUMENT_PAGE_MISSING",
	"INCOMPLETE_DOCUMENT":          "DOCUMENT_INCOMPLETE",
	"DOCUMENT_DAMAGED":             "DOCUMENT_DAMAGED",
	"ID_INVALID":                   "DOCUMENT_UNSUPPORTED",
	"NOT_DOCUMENT":                 "DOCUMENT_UNSUPPORTED",
	"UNFILLED_ID":                  "DOCUMENT_UNREADABLE",
	"BAD_PROOF_OF_IDENTITY":        "BAD_PROOF_OF_IDENTITY",
	"BAD_PROOF_OF_ADDRESS":         "BAD_PROOF_OF_ADDRESS",
	"BAD_PROOF_OF_PAYMENT":         "BAD_PROOF_OF_PAYMENT",
	"ADDITIONAL_DOCUMENT_REQUIRED": "ADDITIONAL_DOCUMENT_REQUIRED",
	// Image quality.
	"UNSATISFACTORY_PHOTOS": "DOCUMENT_IMAGE_QUALITY",
	"LOW_QUALITY":           "DOCUMENT_IMAGE_QUALITY",
	"BLACK_AND_WHITE":       "DOCUMENT_IMAGE_QUALITY",
	"SCREENSHOTS":           "DOCUMENT_SCREENSHOT",
	// Data consistency.
	"PROBLEMATIC_APPLICANT_DATA": "DATA_MISMATCH",
	"REQUESTED_DATA_MISMATCH":    "DATA_MISMATCH",
	"DB_DATA_MISMATCH":           "DATA_MISMATCH",
	"DB_DATA_NOT_FOUND":          "DATA_NOT_FOUND",
	"INCONSISTENT_PROFILE":       "PROFILE_INCONSISTENT",
	"WRONG_ADDRESS":              "ADDRESS_MISMATCH",
	"INCORRECT_SOCIAL_NUMBER":    "SOCIAL_NUMBER_INVALID",
	"DUPLICATE":                  "DUPLICATE_ACCOUNT",
	// Screening.
	"PEP":                 "PEP_MATCH",
	"SANCTIONS":           "SANCTIONS_MATCH",
	"ADVERSE_MEDIA":       "ADVERSE_MEDIA",
	"CRIMINAL":            "CRIMINAL_RECORD",
	"COMPROMISED_PERSONS": "WATCHLIST_MATCH",
	"BLACKLIST":           "BLOCKLIST_MATCH",
	"BLOCKLIST":           "BLOCKLIST_MATCH",
	// Eligibility and policy.
	"AGE_REQUIREMENT_MISMATCH":    "AGE_REQUIREMENT",
	"WRONG_USER_REGION":           "REGION_NOT_SUPPORTED",
	"FOREIGNER":                   "NATIONALITY_NOT_SUPPORTED",
	"REGULATIONS_VIOLATIONS":      "REGULATIONS_VIOLATION",
	"EXTERNAL_DECISION_REJECTION": "EXTERNAL_DECISION",
	"CHECK_UNAVAILABLE":           "CHECK_UNAVAILABLE",
}

// Bounds on what a payload can put into an Event.
const (
	maxReasonCodes = 32
	maxLabelLen    = 64
)

// reasonCodes normalizes rejectLabels: known labels through labelCodes, others to
// SUMSUB_<LABEL> with anything outside [A-Z0-9_] replaced by '_'. Blank labels are dropped,
// duplicates collapsed, order kept, at most maxReasonCodes returned; nil when none.
func reasonCodes(labels []string) []string {
	var out []string
	seen := make(map[string]bool, len(labels))
	for _, l := range labels {
		if len(out) == maxReasonCodes {
			break
		}
		code := labelCode(l)
		if code == "" || seen[code] {
			continue
		}
		seen[code] = true
		out = append(out, code)
	}
	return out
}

func labelCode(label string) string {
	label = strings.TrimSpace(label)
	if c, ok := labelCodes[label]; ok {
		return c
	}
	var b strings.Builder
	for _, r := range strings.ToUpper(label) {
		if b.Len() == maxLabelLen {
			break
		}
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	s := strings.Trim(b.String(), "_")
	if s == "" {
		return ""
	}
	return "SUMSUB_" + s
}
