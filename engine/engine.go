// Package engine is Verdict's decision core: it compiles a bundle of Rego and CEL
// policies once and evaluates a policy input document into a Decision (outcome, score,
// reasons, policy version). It does no I/O: signals are gathered by the caller.
package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"
)

// Engine evaluates decisions against the current PolicySet. It is safe for concurrent
// use; Swap replaces the policy set atomically while in-flight evaluations finish on the
// set they started with.
type Engine struct {
	set         atomic.Pointer[PolicySet]
	evalTimeout time.Duration
	now         func() time.Time
}

// Option configures an Engine.
type Option func(*Engine)

// WithEvalTimeout bounds the evaluation of one policy (default 50 ms). A policy that runs
// longer fails with an *EvalError wrapping context.DeadlineExceeded.
func WithEvalTimeout(d time.Duration) Option { return func(e *Engine) { e.evalTimeout = d } }

// WithClock sets the clock policies see as the evaluation time (default time.Now).
func WithClock(now func() time.Time) Option { return func(e *Engine) { e.now = now } }

// New returns an Engine serving set.
func New(set *PolicySet, opts ...Option) *Engine {
	e := &Engine{evalTimeout: 50 * time.Millisecond, now: time.Now}
	for _, o := range opts {
		o(e)
	}
	e.set.Store(set)
	return e
}

// Swap makes set the policy set for every later evaluation and returns the previous one.
func (e *Engine) Swap(set *PolicySet) *PolicySet { return e.set.Swap(set) }

// Policies returns the current policy set.
func (e *Engine) Policies() *PolicySet { return e.set.Load() }

type evalContext struct {
	ctx context.Context
	now time.Time
}

// Decide evaluates the active policy of in.Action on in. It returns ErrUnknownAction
// when the action has no policy, and an *EvalError when the policy fails, times out or
// yields an invalid decision; in that case the returned Decision still names the policy
// so the caller can apply its fail mode. Decide never returns an approval on error.
func (e *Engine) Decide(ctx context.Context, in *Input) (Decision, error) {
	p, ok := e.set.Load().Policy(in.Action)
	if !ok {
		return Decision{}, fmt.Errorf("decide %q: %w", in.Action, ErrUnknownAction)
	}
	return e.Evaluate(ctx, p, in)
}

// Evaluate evaluates one given policy on in, whatever the active set is (used for shadow
// versions and backtests). Errors are as for Decide.
func (e *Engine) Evaluate(ctx context.Context, p *Policy, in *Input) (Decision, error) {
	ref := p.Ref()
	if e.evalTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.evalTimeout)
		defer cancel()
	}
	d, err := p.eval.eval(evalContext{ctx: ctx, now: e.now()}, in)
	if err == nil {
		err = d.validate()
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			err = fmt.Errorf("%w: %v", ctxErr, err)
		}
		return Decision{Policy: ref}, &EvalError{Action: p.Action, Version: p.Version, Err: err}
	}
	if d.Reasons == nil {
		d.Reasons = []Reason{}
	}
	d.Policy = ref
	return d, nil
}

// validate checks what a policy returned: a valid outcome, UPPER_SNAKE reason codes with
// valid outcomes, an outcome equal to the most severe reason (approve with none), and a
// score within 0..100.
func (d *Decision) validate() error {
	if !d.Outcome.Valid() {
		return fmt.Errorf("decision: invalid outcome %d", d.Outcome)
	}
	most := Approve
	for _, r := range d.Reasons {
		if !reasonCode.MatchString(r.Code) {
			return fmt.Errorf("decision: reason code %q must be UPPER_SNAKE", r.Code)
		}
		if !r.Outcome.Valid() {
			return fmt.Errorf("decision: reason %s has an invalid outcome", r.Code)
		}
		most = max(most, r.Outcome)
	}
	if d.Outcome != most {
		return fmt.Errorf("decision: outcome %s does not match its most severe reason (%s)", d.Outcome, most)
	}
	if d.Score < 0 || d.Score > 100 {
		return fmt.Errorf("decision: score %v outside 0..100", d.Score)
	}
	if d.StepUp != "" {
		if _, ok := stepUpMethods[d.StepUp]; !ok {
			return fmt.Errorf("decision: step_up %q: want otp, webauthn or document", d.StepUp)
		}
	}
	return nil
}

// sortReasons orders reasons most severe first, then by code, so answers are stable.
func sortReasons(rs []Reason) {
	slices.SortStableFunc(rs, func(a, b Reason) int {
		if a.Outcome != b.Outcome {
			return int(b.Outcome) - int(a.Outcome)
		}
		switch {
		case a.Code < b.Code:
			return -1
		case a.Code > b.Code:
			return 1
		}
		return 0
	})
}

// Degradation causes, used as reason codes when a fail mode shapes an answer.
const (
	CauseSignalsUnavailable = "SIGNALS_UNAVAILABLE"
	CausePolicyError        = "POLICY_ERROR"
	CauseStoreUnavailable   = "STORE_UNAVAILABLE"
)

// ApplyFailMode returns the answer an action gives when it decided on incomplete
// information. policyFailed says the policy produced no decision at all (d is then
// ignored but for its PolicyRef). The cause is added as a reason:
//   - closed: block;
//   - review: the policy's outcome, raised to at least review (review if it failed);
//   - open: the policy's outcome, or approve if the policy failed.
func ApplyFailMode(d Decision, mode FailMode, cause string, policyFailed bool) Decision {
	if policyFailed {
		d = Decision{Outcome: Approve, Policy: d.Policy}
	}
	var outcome Outcome
	switch mode {
	case FailClosed:
		outcome = Block
	case FailReview:
		outcome = max(d.Outcome, Review)
	default:
		outcome = max(d.Outcome, Approve)
	}
	var msg string
	switch cause {
	case CauseSignalsUnavailable:
		msg = "a signal source was unavailable"
	case CausePolicyError:
		msg = "the policy failed to evaluate"
	case CauseStoreUnavailable:
		msg = "the decision could not be stored"
	}
	d.Reasons = append(slices.Clone(d.Reasons), Reason{Code: cause, Outcome: outcome, Message: fmt.Sprintf("%s; fail mode %s", msg, mode)})
	d.Outcome = outcome
	if outcome != StepUp {
		d.StepUp = ""
	}
	sortReasons(d.Reasons)
	return d
}
