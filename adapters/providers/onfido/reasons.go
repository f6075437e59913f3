package onfido

import (
	"encoding/json"
	"sort"
	"strings"
)

// report is the part of an Onfido report the adapter reads: its name, result, sub_result
// and the results of its breakdowns. properties (extracted document data, watchlist
// records, ...) is never decoded: it carries personal data.
type report struct {
	Name      string                     `json:"name"`
	Result    string                     `json:"result"`
	SubResult string                     `json:"sub_result"`
	Breakdown map[string]json.RawMessage `json:"breakdown"`
}

// breakdown is one breakdown of a report: its result and the results of its own
// sub-breakdowns.
type breakdown struct {
	Result    string                     `json:"result"`
	Breakdown map[string]json.RawMessage `json:"breakdown"`
}

// family is how a report's codes are named: its prefix and the codes of the breakdowns
// that flag (result "consider"), by breakdown or "breakdown.sub_breakdown" name. A flagged
// breakdown not listed is named PREFIX_<BREAKDOWN>.
type family struct {
	prefix string
	codes  map[string]string
}

var documentFamily = family{prefix: "DOCUMENT", codes: map[string]string{
	"data_comparison":                               "DOCUMENT_DATA_MISMATCH",
	"data_consistency":                              "DOCUMENT_DATA_INCONSISTENT",
	"data_validation":                               "DOCUMENT_DATA_INVALID",
	"data_validation.document_expiration":           "DOCUMENT_EXPIRED",
	"data_validation.expiry_date":                   "DOCUMENT_EXPIRED",
	"image_integrity":                               "DOCUMENT_IMAGE_INTEGRITY",
	"image_integrity.image_quality":                 "DOCUMENT_IMAGE_QUALITY",
	"image_integrity.supported_document":            "DOCUMENT_UNSUPPORTED",
	"image_integrity.conclusive_document_quality":   "DOCUMENT_INCONCLUSIVE_QUALITY",
	"image_integrity.colour_picture":                "DOCUMENT_NOT_COLOUR",
	"visual_authenticity":                           "DOCUMENT_VISUAL_AUTHENTICITY",
	"visual_authenticity.digital_tampering":         "DOCUMENT_DIGITAL_TAMPERING",
	"visual_authenticity.original_document_present": "DOCUMENT_NOT_ORIGINAL",
	"visual_authenticity.picture_face_integrity":    "DOCUMENT_PICTURE_FACE_INTEGRITY",
	"compromised_document":                          "DOCUMENT_COMPROMISED",
	"police_record":                                 "DOCUMENT_POLICE_RECORD",
	"age_validation":                                "DOCUMENT_AGE_VALIDATION",
	"age_validation.minimum_accepted_age":           "AGE_BELOW_MINIMUM",
	"issuing_authority":                             "DOCUMENT_ISSUING_AUTHORITY",
}}

var faceFamily = family{prefix: "FACE", codes: map[string]string{
	"face_comparison":     "FACE_MISMATCH",
	"image_integrity":     "FACE_IMAGE_INTEGRITY",
	"visual_authenticity": "FACE_SPOOFING",
}}

var watchlistFamily = family{prefix: "WATCHLIST", codes: map[string]string{
	"sanction":                      "WATCHLIST_SANCTION",
	"politically_exposed_person":    "WATCHLIST_PEP",
	"adverse_media":                 "WATCHLIST_ADVERSE_MEDIA",
	"legal_and_regulatory_warnings": "WATCHLIST_WARNING",
	"monitored_lists":               "WATCHLIST_WARNING",
}}

var families = map[string]family{
	"known_faces": {prefix: "KNOWN_FACES", codes: map[string]string{
		"previously_seen_faces": "KNOWN_FACES_MATCH",
	}},
	"identity_enhanced":   {prefix: "IDENTITY_RECORD"},
	"proof_of_address":    {prefix: "PROOF_OF_ADDRESS"},
	"us_driving_licence":  {prefix: "US_DRIVING_LICENCE"},
	"device_intelligence": {prefix: "DEVICE"},
	"india_pan":           {prefix: "INDIA_PAN"},
}

func familyOf(name string) family {
	switch {
	case strings.HasPrefix(name, "document"):
		return documentFamily
	case strings.HasPrefix(name, "facial_similarity"):
		return faceFamily
	case strings.HasPrefix(name, "watchlist"):
		return watchlistFamily
	}
	if f, ok := families[name]; ok {
		return f
	}
	return family{prefix: "REPORT"}
}

// reportCodes returns the reason codes of reports: PREFIX_CONSIDER or PREFIX_UNIDENTIFIED
// for a report's result, DOCUMENT_REJECTED / DOCUMENT_SUSPECTED / DOCUMENT_CAUTION for a
// document report's sub_result, and one code per flagged breakdown and sub-breakdown.
func reportCodes(reports []report) []string {
	var codes []string
	for _, r := range reports {
		f := familyOf(r.Name)
		switch r.Result {
		case "consider":
			codes = appendCodes(codes, f.prefix+"_CONSIDER")
		case "unidentified":
			codes = appendCodes(codes, f.prefix+"_UNIDENTIFIED")
		}
		if f.prefix == "DOCUMENT" {
			switch r.SubResult {
			case "rejected", "suspected", "caution":
				codes = appendCodes(codes, "DOCUMENT_"+strings.ToUpper(r.SubResult))
			}
		}
		codes = appendCodes(codes, breakdownCodes(f, r.Breakdown)...)
	}
	return codes
}

func breakdownCodes(f family, bd map[string]json.RawMessage) []string {
	var codes []string
	for _, name := range sortedKeys(bd) {
		var b breakdown
		if json.Unmarshal(bd[name], &b) != nil {
			continue // shapes vary by report (device_intelligence); unknown shapes say nothing
		}
		if b.Result == "consider" {
			codes = appendCodes(codes, f.code(name))
		}
		for _, sub := range sortedKeys(b.Breakdown) {
			var s breakdown
			if json.Unmarshal(b.Breakdown[sub], &s) != nil || s.Result != "consider" {
				continue
			}
			if c, ok := f.codes[name+"."+sub]; ok {
				codes = appendCodes(codes, c)
			}
		}
	}
	return codes
}

func (f family) code(name string) string {
	if c, ok := f.codes[name]; ok {
		return c
	}
	return f.prefix + "_" + snake(name)
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

const (
	maxReasonLen   = 64
	maxReasonCount = 16
)

// normalizeReasons turns a workflow run's reasons (labels configured on the workflow
// version in Studio) into UPPER_SNAKE codes prefixed with WORKFLOW_REASON_, at most 16.
func normalizeReasons(reasons []string) []string {
	var codes []string
	for _, r := range reasons {
		if len(codes) >= maxReasonCount {
			break
		}
		if s := snake(r); s != "" {
			codes = appendCodes(codes, "WORKFLOW_REASON_"+s)
		}
	}
	return codes
}

// snake upper-cases s and replaces every run of characters other than A-Z and 0-9 with
// one underscore, trimming underscores at both ends; the result is cut to 64 bytes.
func snake(s string) string {
	var b strings.Builder
	under := false
	for _, r := range strings.ToUpper(s) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			if under && b.Len() > 0 {
				b.WriteByte('_')
			}
			under = false
			b.WriteRune(r)
			if b.Len() >= maxReasonLen {
				break
			}
			continue
		}
		under = true
	}
	return strings.TrimRight(b.String(), "_")
}

// appendCodes appends the codes not already in dst.
func appendCodes(dst []string, codes ...string) []string {
next:
	for _, c := range codes {
		for _, d := range dst {
			if d == c {
				continue next
			}
		}
		dst = append(dst, c)
	}
	return dst
}
