package engine

import (
	"fmt"
)

// Outcome is a decision's answer. Outcomes are ordered by severity:
// Approve < StepUp < Review < Block; when several rules fire, the most severe wins.
type Outcome uint8

// The outcomes, least severe first. The zero value is not a valid outcome so that a
// forgotten assignment can never read as an approval.
const (
	Approve Outcome = iota + 1
	StepUp
	Review
	Block
)

var outcomeNames = [...]string{Approve: "approve", StepUp: "step_up", Review: "review", Block: "block"}

// String returns the outcome's wire name ("approve", "step_up", "review", "block").
func (o Outcome) String() string {
	if o < Approve || o > Block {
		return fmt.Sprintf("outcome(%d)", uint8(o))
	}
	return outcomeNames[o]
}

// Valid reports whether o is one of the four outcomes.
func (o Outcome) Valid() bool { return o >= Approve && o <= Block }

// ParseOutcome returns the outcome named s, or an error for any other string.
func ParseOutcome(s string) (Outcome, error) {
	switch s {
	case "approve":
		return Approve, nil
	case "step_up":
		return StepUp, nil
	case "review":
		return Review, nil
	case "block":
		return Block, nil
	}
	return 0, fmt.Errorf("invalid outcome %q (want approve, step_up, review or block)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (o Outcome) MarshalText() ([]byte, error) {
	if !o.Valid() {
		return nil, fmt.Errorf("invalid outcome %d", uint8(o))
	}
	return []byte(outcomeNames[o]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (o *Outcome) UnmarshalText(b []byte) error {
	v, err := ParseOutcome(string(b))
	if err != nil {
		return err
	}
	*o = v
	return nil
}

// FailMode says what an action answers when it cannot decide on complete information:
// a signal source or the store is down, or its policy failed at run time.
type FailMode uint8

// The fail modes. FailClosed is the zero value on purpose.
const (
	FailClosed FailMode = iota // block
	FailReview                 // at least review
	FailOpen                   // keep the policy's outcome; approve if the policy itself failed
)

// String returns the fail mode's name as written in policies.
func (f FailMode) String() string {
	switch f {
	case FailOpen:
		return "open"
	case FailReview:
		return "review"
	default:
		return "closed"
	}
}

// ParseFailMode parses "open", "closed" or "review".
func ParseFailMode(s string) (FailMode, error) {
	switch s {
	case "open":
		return FailOpen, nil
	case "closed":
		return FailClosed, nil
	case "review":
		return FailReview, nil
	}
	return 0, fmt.Errorf("invalid fail_mode %q (want open, closed or review)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (f FailMode) MarshalText() ([]byte, error) { return []byte(f.String()), nil }
