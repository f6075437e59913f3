package engine

import (
	"errors"
	"fmt"
)

// ErrUnknownAction is returned by Decide for an action that has no loaded policy.
var ErrUnknownAction = errors.New("unknown action")

// LoadError is returned by Load when a policy file cannot be parsed or compiled, or
// breaks a rule of the bundle (forbidden builtin, duplicate action, bad metadata).
// Each problem names its file and line.
type LoadError struct {
	Problems []Problem
}

// Problem is one load error at a position in a policy file.
type Problem struct {
	File    string
	Line    int
	Message string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Message)
	}
	if p.File != "" {
		return fmt.Sprintf("%s: %s", p.File, p.Message)
	}
	return p.Message
}

func (e *LoadError) Error() string {
	if len(e.Problems) == 1 {
		return "load policies: " + e.Problems[0].String()
	}
	s := fmt.Sprintf("load policies: %d problems:", len(e.Problems))
	for _, p := range e.Problems {
		s += "\n  " + p.String()
	}
	return s
}

// EvalError is returned by Decide when a policy fails at run time: it errors, exceeds
// its deadline or cost limit, or yields something that is not a valid decision. The
// caller applies the action's fail mode; an EvalError never reads as an approval.
type EvalError struct {
	Action  string
	Version string
	Err     error
}

func (e *EvalError) Error() string {
	return fmt.Sprintf("evaluate policy %s@%s: %v", e.Action, e.Version, e.Err)
}

func (e *EvalError) Unwrap() error { return e.Err }
