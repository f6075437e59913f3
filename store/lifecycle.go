package store

import (
	"context"
	"time"
)

// Outcome labels: what was learned about a decision afterwards.
const (
	LabelFraud         = "fraud"
	LabelChargeback    = "chargeback"
	LabelLegit         = "legit"
	LabelFalsePositive = "false_positive"
)

// Labels lists the known outcome labels.
var Labels = []string{LabelFraud, LabelChargeback, LabelLegit, LabelFalsePositive}

// OutcomeLabel is one label attached to a stored decision, with free-form tags.
type OutcomeLabel struct {
	DecisionID string
	Label      string   // one of Labels
	Tags       []string // free-form, e.g. "case-1234", "friendly_fraud"
	CreatedAt  time.Time
	Actor      string
}

// LabelStore keeps outcome labels.
type LabelStore interface {
	// PutLabels stores the labels, replacing the tags of a (decision, label) pair already
	// stored, and appends one outcome.labeled audit event per label, all in one
	// transaction: all or nothing. A label for a decision that does not exist fails the
	// whole call with an error wrapping ErrNotFound that names the decision id; an unknown
	// label or invalid tag fails it with ErrInvalidRecord. It returns how many pairs were
	// new.
	PutLabels(ctx context.Context, labels []OutcomeLabel, correlationID string) (created int, err error)
	// MissingDecision returns the first of ids (in the order given) that names no stored
	// decision, or "" when all do. It reads only: ImportLabels checks a whole import with it
	// before writing any part of it.
	MissingDecision(ctx context.Context, ids []string) (string, error)
	// DecisionLabels returns a decision's labels ordered by label.
	DecisionLabels(ctx context.Context, decisionID string) ([]OutcomeLabel, error)
}

// DecisionFilter selects stored decisions by creation time [From, To) and action.
type DecisionFilter struct {
	From, To time.Time // zero: unbounded
	Action   string    // "": every action
}

// LabeledDecision is a stored decision with its labels.
type LabeledDecision struct {
	DecisionRecord
	Labels []OutcomeLabel
}

// DecisionScanner streams stored decisions for backtests and exports.
type DecisionScanner interface {
	// ScanDecisions calls fn for every decision matching f, in (CreatedAt, ID) order, with
	// its labels, without holding them all in memory. An error from fn stops the scan and
	// is returned.
	ScanDecisions(ctx context.Context, f DecisionFilter, fn func(LabeledDecision) error) error
}
