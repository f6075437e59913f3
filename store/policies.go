package store

import (
	"context"
	"fmt"
	"time"
)

// PolicyVersion is an immutable, published policy bundle: every file of it (Rego, CEL,
// data), addressed by its content hash.
type PolicyVersion struct {
	Hash      string            // "sha256:<hex>" over the files (engine.BundleHash); the version's id
	Label     string            // human label, e.g. payout-2026.12.2
	Author    string            // who published it
	Changelog string            // why
	Files     map[string][]byte // path → content; empty in listings
	CreatedAt time.Time
}

// PolicyActivation makes a published version the live one for an action.
type PolicyActivation struct {
	ID       string // activation id
	Action   string
	Hash     string // the version made live
	Previous string // the version live before ("" for the embedded default)
	Actor    string // who asked
	Approver string // who approved, when approval was required
	Status   string // ActivationPending, ActivationActive, ActivationSuperseded, ActivationRolledBack
	At       time.Time
}

// Activation statuses.
const (
	ActivationPending    = "pending"     // waits for a second approver
	ActivationActive     = "active"      // the live version of its action
	ActivationSuperseded = "superseded"  // was live, replaced by a later activation
	ActivationRolledBack = "rolled_back" // was live, rolled back
)

// LivePolicies is what every replica polls: the live version and the shadow versions of
// each action, and a generation that changes whenever either does.
type LivePolicies struct {
	Generation int64
	Active     map[string]string   // action → version hash (actions absent run the default bundle)
	Shadow     map[string][]string // action → shadow version hashes
}

// ShadowResult is a shadow version's outcome on a live decision's input.
type ShadowResult struct {
	DecisionID  string
	Action      string
	Hash        string // the shadow version
	Outcome     string
	ReasonCodes []string
	CreatedAt   time.Time
}

// ShadowAgreement compares the live outcomes with one shadow version's.
type ShadowAgreement struct {
	Hash      string
	Total     int64
	Agree     int64
	Confusion map[string]map[string]int64 // live outcome → shadow outcome → count
	// Errors counts the results where the version failed (reason POLICY_ERROR): their
	// outcome is its fail mode's, not a decision of its rules.
	Errors int64
}

// PolicyStore keeps published versions, activations and shadow results. Every change
// appends its audit event (policy.published, policy.activation_requested,
// policy.activated, policy.rolled_back, policy.shadow_set) in the same transaction.
type PolicyStore interface {
	// PublishPolicy stores v (immutable). Publishing the same hash again returns
	// created=false and changes nothing.
	PublishPolicy(ctx context.Context, v PolicyVersion, correlationID string) (created bool, err error)
	// PolicyVersion returns a version with its files, or ErrNotFound.
	PolicyVersion(ctx context.Context, hash string) (PolicyVersion, error)
	// ListPolicyVersions returns every version, newest first, without files.
	ListPolicyVersions(ctx context.Context) ([]PolicyVersion, error)
	// ActivatePolicy makes a.Hash live for a.Action (ErrNotFound for an unknown version),
	// or records it as pending when requireApproval. It returns the activation.
	ActivatePolicy(ctx context.Context, a PolicyActivation, requireApproval bool, correlationID string) (PolicyActivation, error)
	// ApproveActivation makes a pending activation live; the approver must differ from
	// the requester (ErrConflict otherwise); an unknown or non-pending id is ErrNotFound.
	ApproveActivation(ctx context.Context, id, approver, correlationID string) (PolicyActivation, error)
	// RollbackPolicy makes the action's previous version live again (the default bundle
	// when there was none) and returns the new state; ErrNotFound when nothing is active.
	RollbackPolicy(ctx context.Context, action, actor, correlationID string) (PolicyActivation, error)
	// PolicyActivations returns an action's activation history, newest first.
	PolicyActivations(ctx context.Context, action string) ([]PolicyActivation, error)
	// SetShadow replaces the shadow versions of an action (each must be published).
	SetShadow(ctx context.Context, action string, hashes []string, actor, correlationID string) error
	// LivePolicies returns the live and shadow versions with their generation.
	LivePolicies(ctx context.Context) (LivePolicies, error)
	// WriteShadowResults stores shadow outcomes (no audit events: they change nothing).
	WriteShadowResults(ctx context.Context, rs []ShadowResult) error
	// ShadowAgreement compares live decisions of the action since the given time with each
	// shadow version's results on them.
	ShadowAgreement(ctx context.Context, action string, since time.Time) ([]ShadowAgreement, error)
}

// AddShadowAgreement adds n (live, shadow) pairs of hash to out, errors of them policy
// errors, whose rows arrive ordered by hash, and returns out: the one fold both stores use
// for ShadowAgreement.
func AddShadowAgreement(out []ShadowAgreement, hash, live, shadow string, n, errors int64) []ShadowAgreement {
	if len(out) == 0 || out[len(out)-1].Hash != hash {
		out = append(out, ShadowAgreement{Hash: hash, Confusion: map[string]map[string]int64{}})
	}
	a := &out[len(out)-1]
	a.Total += n
	a.Errors += errors
	if live == shadow {
		a.Agree += n
	}
	if a.Confusion[live] == nil {
		a.Confusion[live] = map[string]int64{}
	}
	a.Confusion[live][shadow] += n
	return out
}

// CheckStillPrevious refuses to approve pending activation a when the action's live version
// (live) is no longer the one that was live when a was requested: someone activated or
// rolled back in between, and approving would replace that version, unseen by the approver
// and the requester. The error wraps ErrLiveChanged; request the activation again.
func CheckStillPrevious(a PolicyActivation, live string) error {
	if live == a.Previous {
		return nil
	}
	name := func(h string) string {
		if h == "" {
			return "the default bundle"
		}
		return h
	}
	return fmt.Errorf("activation %q: the live version of %s changed since it was requested (%s then, %s now); request it again: %w",
		a.ID, a.Action, name(a.Previous), name(live), ErrLiveChanged)
}

// ErrLiveChanged is an approval refused by CheckStillPrevious; it wraps ErrConflict.
var ErrLiveChanged = fmt.Errorf("live version changed since the request: %w", ErrConflict)

// RestoredPrevious returns the Previous of the activation a rollback of the action's live
// version records: the version that was live before the one it restores. history is the
// action's activations that went live (status active, superseded or rolled_back), in the
// order they went live. Activations and rollbacks are replayed as a stack (an activation
// pushes its version, the rollback that follows a rolled_back activation pops one), so
// repeated rollbacks walk back the whole history, also through a version activated twice
// (v1, v2, v1, v2 rolls back to v1, v2, v1, then the default bundle) where looking up the
// restored version's last activation would go back and forth between two versions.
func RestoredPrevious(history []PolicyActivation) string {
	var stack []string
	rollback := false // the activation before this one was rolled back, by this one
	for _, a := range history {
		if rollback {
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		} else {
			stack = append(stack, a.Hash)
		}
		rollback = a.Status == ActivationRolledBack
	}
	// The stack ends with the restored version's predecessor, the restored version and the
	// live one.
	if len(stack) < 3 {
		return ""
	}
	return stack[len(stack)-3]
}
