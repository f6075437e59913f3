package engine

import (
	"slices"

	celast "github.com/google/cel-go/common/ast"
)

// Sources is a set of signal sources: the parts of input.signals that Verdict gathers for
// a decision (velocity, device, lists, verification). signals.unavailable and
// signals.not_gathered are about the sources and are not sources themselves.
type Sources uint8

// The signal sources, named as in the input document and in signals.unavailable.
const (
	SourceVelocity Sources = 1 << iota
	SourceDevice
	SourceLists
	SourceVerification

	AllSources = SourceVelocity | SourceDevice | SourceLists | SourceVerification
)

var sourceNames = [...]struct {
	s    Sources
	name string
}{{SourceVelocity, "velocity"}, {SourceDevice, "device"}, {SourceLists, "lists"}, {SourceVerification, "verification"}}

// SourceNamed returns the source called name ("velocity", ...), or 0 for any other name.
func SourceNamed(name string) Sources {
	for _, n := range sourceNames {
		if n.name == name {
			return n.s
		}
	}
	return 0
}

// Has reports whether every source of o is in s.
func (s Sources) Has(o Sources) bool { return s&o == o }

// Names returns the names of the sources in s, in the order velocity, device, lists,
// verification; an empty (non-nil) slice for none.
func (s Sources) Names() []string {
	out := []string{}
	for _, n := range sourceNames {
		if s&n.s != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

func (s Sources) String() string {
	if s == 0 {
		return "none"
	}
	out := ""
	for i, n := range s.Names() {
		if i > 0 {
			out += ","
		}
		out += n
	}
	return out
}

// sourcesOf returns the sources named in names (unknown names are ignored).
func sourcesOf(names []string) Sources {
	var s Sources
	for _, n := range names {
		s |= SourceNamed(n)
	}
	return s
}

// Reads returns the signal sources the policy can read, found when it was loaded: a
// source it never refers to cannot change its decision, so it need not be gathered, and
// its failure does not degrade the decision. The analysis is conservative: a policy that
// reads input.signals or input as a whole, or picks a key of input.signals by a
// variable, reads every source.
func (p *Policy) Reads() Sources { return p.reads }

// Degraded returns the sources p reads that s lists as unavailable or as not gathered:
// when there is one, the decision p makes on s is made on incomplete information and the
// action's fail mode applies (CauseSignalsUnavailable). A source p does not read is
// ignored, whether it failed or was not gathered. nil when there is none.
func Degraded(p *Policy, s *Signals) []string {
	missing := (sourcesOf(s.Unavailable) | sourcesOf(s.NotGathered)) & p.reads
	if missing == 0 {
		return nil
	}
	return missing.Names()
}

// shapeSources returns the sources a Rego policy's input shape reaches. The shape is the
// one its evaluator builds the input from (readInputShape: the rules of the decision,
// after load-time partial evaluation, and every rule and function they depend on), so
// a source outside it is not even in the document the policy evaluates.
func shapeSources(shape *inputShape) Sources {
	sig := shape.get("signals")
	switch {
	case sig == nil:
		return 0
	case sig.all:
		return AllSources
	}
	var s Sources
	for _, k := range sig.kids {
		s |= SourceNamed(k.name)
	}
	return s
}

// celReads returns the sources a checked CEL expression reads: signals.<source> (a
// select on the signals variable, has() included). signals used any other way (passed to
// a function, indexed, iterated, compared) reads every source.
func celReads(expr celast.Expr) Sources {
	var s Sources
	selected := map[int64]bool{} // ids of signals idents that are the operand of a select
	var idents []int64
	celast.PreOrderVisit(expr, celast.NewExprVisitor(func(e celast.Expr) {
		switch e.Kind() {
		case celast.SelectKind:
			sel := e.AsSelect()
			if op := sel.Operand(); op.Kind() == celast.IdentKind && op.AsIdent() == "signals" {
				selected[op.ID()] = true
				s |= SourceNamed(sel.FieldName())
			}
		case celast.IdentKind:
			if e.AsIdent() == "signals" {
				idents = append(idents, e.ID())
			}
		}
	}))
	if slices.ContainsFunc(idents, func(id int64) bool { return !selected[id] }) {
		return AllSources
	}
	return s
}
