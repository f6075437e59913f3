package store

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The rules of outcome labels, shared by both stores so that a label one accepts is never
// refused by the other.

type labelPair struct{ decisionID, label string }

// PrepareLabels validates labels and returns a copy with zero creation times set to now,
// a pair given more than once kept only at its last position, and the distinct decision
// ids in order of first appearance. Both stores apply the same rules.
func PrepareLabels(labels []OutcomeLabel, now time.Time) ([]OutcomeLabel, []string, error) {
	last := make(map[labelPair]int, len(labels))
	for i, l := range labels {
		if err := ValidateOutcomeLabel(l); err != nil {
			return nil, nil, err
		}
		last[labelPair{l.DecisionID, l.Label}] = i
	}
	out := make([]OutcomeLabel, 0, len(last))
	seen := make(map[string]bool, len(labels))
	var ids []string
	for i, l := range labels {
		if !seen[l.DecisionID] {
			seen[l.DecisionID] = true
			ids = append(ids, l.DecisionID)
		}
		if last[labelPair{l.DecisionID, l.Label}] != i {
			continue
		}
		l.Tags = slices.Clone(l.Tags)
		if l.CreatedAt.IsZero() {
			l.CreatedAt = now
		}
		out = append(out, l)
	}
	return out, ids, nil
}

// Outcome label limits, enforced by both stores and checked early by the HTTP API.
const (
	MaxLabelTags   = 16
	MaxLabelTagLen = 64
)

// ValidateOutcomeLabel returns an error wrapping ErrInvalidRecord for a label with an empty
// or invalid decision id, a label not in Labels, more than 16 tags, a tag that is not
// 1 to 64 characters of [A-Za-z0-9_:.-], or an actor that is not UTF-8 text without NUL.
func ValidateOutcomeLabel(l OutcomeLabel) error {
	if l.DecisionID == "" || !validText(l.DecisionID) {
		return fmt.Errorf("%w: label %q: decision id is empty or not valid UTF-8 text", ErrInvalidRecord, l.Label)
	}
	if !slices.Contains(Labels, l.Label) {
		return fmt.Errorf("%w: label on decision %q: unknown label (want one of %s)", ErrInvalidRecord,
			l.DecisionID, strings.Join(Labels, ", "))
	}
	if len(l.Tags) > MaxLabelTags {
		return fmt.Errorf("%w: label %q on decision %q: more than %d tags", ErrInvalidRecord, l.Label, l.DecisionID, MaxLabelTags)
	}
	for _, t := range l.Tags {
		if !ValidLabelTag(t) {
			return fmt.Errorf("%w: label %q on decision %q: a tag is not 1 to %d characters of A-Z a-z 0-9 _ : . -",
				ErrInvalidRecord, l.Label, l.DecisionID, MaxLabelTagLen)
		}
	}
	if !validText(l.Actor) {
		return fmt.Errorf("%w: label %q on decision %q: actor is not valid UTF-8 text", ErrInvalidRecord, l.Label, l.DecisionID)
	}
	return nil
}

func ValidLabelTag(t string) bool {
	if len(t) == 0 || len(t) > MaxLabelTagLen {
		return false
	}
	for i := 0; i < len(t); i++ {
		switch c := t[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == ':', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}

// TagsJSON encodes tags as a JSON array, [] for none.
func TagsJSON(tags []string) string {
	if len(tags) == 0 {
		return "[]"
	}
	// Tags are validated ASCII; encoding a slice of strings cannot fail.
	b, _ := json.Marshal(tags)
	return string(b)
}
