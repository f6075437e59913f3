package engine

import (
	"math"
	"strconv"

	"github.com/open-policy-agent/opa/v1/ast"
)

// inputShape is the part of the input document a Rego policy can read: the object keys
// its rules name, found when the policy is loaded (see readInputShape). The evaluator
// builds only that part of the OPA value, so a request pays for the fields its policy
// looks at rather than for the whole document. Leaving out a key no rule can reach
// cannot change a decision; the Input a decision stores stays complete.
type inputShape struct {
	all  bool       // every key, at any depth, can be read
	kids []shapeKey // the keys that can be read, when not all
}

type shapeKey struct {
	name  string
	key   *ast.Term
	shape *inputShape
}

// wholeInput is the shape of a policy that may read anything.
var wholeInput = &inputShape{all: true}

// get returns the shape under key name, or nil when no rule reads it.
func (s *inputShape) get(name string) *inputShape {
	if s.all {
		return s
	}
	for i := range s.kids {
		if s.kids[i].name == name {
			return s.kids[i].shape
		}
	}
	return nil
}

// size is the number of keys in s, at any depth.
func (s *inputShape) size() int {
	n := len(s.kids)
	for _, k := range s.kids {
		n += k.shape.size()
	}
	return n
}

// add marks path, and everything under it, as read.
func (s *inputShape) add(path []string) {
	if s.all {
		return
	}
	if len(path) == 0 {
		s.all, s.kids = true, nil
		return
	}
	kid := s.get(path[0])
	if kid == nil {
		kid = &inputShape{}
		s.kids = append(s.kids, shapeKey{name: path[0], key: ast.StringTerm(path[0]), shape: kid})
	}
	kid.add(path[1:])
}

// Keys of the fixed part of the input document, built once.
var (
	keyAction       = ast.StringTerm("action")
	keySubject      = ast.StringTerm("subject")
	keyDevice       = ast.StringTerm("device")
	keyContext      = ast.StringTerm("context")
	keyBehavior     = ast.StringTerm("behavior")
	keySignals      = ast.StringTerm("signals")
	keyVerification = ast.StringTerm("verification")
	keyVelocity     = ast.StringTerm("velocity")
	keyLists        = ast.StringTerm("lists")
	keyUnavailable  = ast.StringTerm("unavailable")
	keyNotGathered  = ast.StringTerm("not_gathered")
	keyStatus       = ast.StringTerm("status")
	keyProvider     = ast.StringTerm("provider")
	keyReasonCodes  = ast.StringTerm("reason_codes")
	keyAgeDays      = ast.StringTerm("age_days")
	keyUser         = ast.StringTerm("user")
	keyIP           = ast.StringTerm("ip")
	keyCount1m      = ast.StringTerm("count_1m")
	keyCount1h      = ast.StringTerm("count_1h")
	keyCount24h     = ast.StringTerm("count_24h")
	keyUsers24h     = ast.StringTerm("distinct_users_24h")
	keyDevices24h   = ast.StringTerm("distinct_devices_24h")
	keyKnown        = ast.StringTerm("known")
	keyAgeHours     = ast.StringTerm("age_hours")
	keyUsersSeen    = ast.StringTerm("users_seen")
	keyFlagged      = ast.StringTerm("flagged")
)

// inputPlan is what a policy's evaluator needs to build its input values: the shape it
// reads, and terms it can share between requests because they are immutable.
type inputPlan struct {
	shape *inputShape
	// strings holds a term for every string constant of the policy: input strings a
	// policy compares with (a verification status, a payout method) reuse them.
	strings map[string]*ast.Term
	// lists holds, when the policy reads a few named lists only, the object of every
	// combination of them (absent, false or true each), indexed by listsIndex.
	lists []*ast.Term
	// terms is how many terms an input is likely to need: the size of the block the
	// builder allocates them from.
	terms int
}

// maxTabulatedLists bounds the lists table to 3^5 = 243 small objects.
const maxTabulatedLists = 5

func newInputPlan(shape *inputShape, strings map[string]*ast.Term) *inputPlan {
	p := &inputPlan{shape: shape, strings: strings, terms: 32}
	if !shape.all {
		p.terms = shape.size() + 4 // room for a few array elements
	}
	sig := shape.get("signals")
	if sig == nil || sig.all {
		return p
	}
	ls := sig.get("lists")
	if ls == nil || ls.all || len(ls.kids) > maxTabulatedLists {
		return p
	}
	n := 1
	for range ls.kids {
		n *= 3
	}
	p.lists = make([]*ast.Term, n)
	for i := range p.lists {
		var f fields
		code := i
		for _, kid := range ls.kids {
			switch code % 3 {
			case 1:
				f.add(kid.key, ast.InternedTerm(false))
			case 2:
				f.add(kid.key, ast.InternedTerm(true))
			}
			code /= 3
		}
		if f.n == 0 {
			p.lists[i] = ast.InternedEmptyObject
		} else {
			p.lists[i] = ast.NewTerm(ast.NewObject(f.items[:f.n]...))
		}
	}
	return p
}

// listsIndex is the index in inputPlan.lists of the lists object of a request.
func listsIndex(lists map[string]bool, s *inputShape) int {
	code, weight := 0, 1
	for _, kid := range s.kids {
		if on, ok := lists[kid.name]; ok {
			if on {
				code += 2 * weight
			} else {
				code += weight
			}
		}
		weight *= 3
	}
	return code
}

// fields collects the items of one object. Objects of the input have at most ten fixed
// keys; the array lives on the stack.
type fields struct {
	n     int
	items [10][2]*ast.Term
}

func (f *fields) add(k, v *ast.Term) {
	f.items[f.n] = [2]*ast.Term{k, v}
	f.n++
}

// inputBuilder builds the input value of one request. Its terms come from blocks rather
// than one allocation each: an input has a few dozen of them.
type inputBuilder struct {
	plan  *inputPlan
	terms []ast.Term
}

func (b *inputBuilder) term(v ast.Value) *ast.Term {
	if len(b.terms) == 0 {
		b.terms = make([]ast.Term, b.plan.terms)
	}
	t := &b.terms[0]
	b.terms = b.terms[1:]
	t.Value = v
	return t
}

func (b *inputBuilder) object(f *fields) *ast.Term {
	if f.n == 0 {
		return ast.InternedEmptyObject
	}
	return b.term(ast.NewObject(f.items[:f.n]...))
}

func (b *inputBuilder) string(s string) *ast.Term {
	if t, ok := b.plan.strings[s]; ok {
		return t
	}
	return b.term(ast.String(s))
}

func (b *inputBuilder) int(n int64) *ast.Term {
	if n >= -1 && ast.HasInternedIntNumberTerm(int(n)) {
		return ast.InternedTerm(int(n))
	}
	return b.term(ast.Number(strconv.FormatInt(n, 10)))
}

// number converts a float64 as ast.FloatNumberTerm does, but gives integral values
// (amounts, counts, ages: most numbers in practice) their interned term or the cheaper
// integer formatting.
func (b *inputBuilder) number(f float64) *ast.Term {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return b.int(int64(f))
	}
	return b.term(ast.Number(strconv.FormatFloat(f, 'g', -1, 64)))
}

func (b *inputBuilder) strings(ss []string) *ast.Term {
	if len(ss) == 0 {
		return ast.InternedEmptyArray
	}
	ts := make([]*ast.Term, len(ss))
	for i, s := range ss {
		ts[i] = b.string(s)
	}
	return b.term(ast.NewArray(ts...))
}

// inputTerm builds the OPA value of the part of the input document that p's shape
// names, directly, without the JSON round trip EvalInput would make. Its terms come from
// block as long as it lasts.
func inputTerm(in *Input, p *inputPlan, block []ast.Term) *ast.Term {
	b := inputBuilder{plan: p, terms: block}
	s := p.shape
	var f fields
	if s.get("action") != nil {
		f.add(keyAction, b.string(in.Action))
	}
	if k := s.get("subject"); k != nil {
		f.add(keySubject, b.posted(in.Subject, k))
	}
	if k := s.get("device"); k != nil {
		f.add(keyDevice, b.posted(in.Device, k))
	}
	if k := s.get("context"); k != nil {
		f.add(keyContext, b.posted(in.Context, k))
	}
	if k := s.get("behavior"); k != nil {
		f.add(keyBehavior, b.posted(in.Behavior, k))
	}
	if k := s.get("signals"); k != nil {
		f.add(keySignals, b.signals(&in.Signals, k))
	}
	return b.object(&f)
}

// posted converts an object decoded by encoding/json as far as s reaches.
func (b *inputBuilder) posted(m map[string]any, s *inputShape) *ast.Term {
	if len(m) == 0 {
		return ast.InternedEmptyObject
	}
	if s.all {
		items := make([][2]*ast.Term, 0, len(m))
		for k, v := range m {
			items = append(items, [2]*ast.Term{b.string(k), b.json(v, s)})
		}
		return b.term(ast.NewObject(items...))
	}
	var f fields
	for i := range s.kids {
		kid := &s.kids[i]
		v, ok := m[kid.name]
		if !ok {
			continue
		}
		if f.n == len(f.items) {
			// More keys read than fit on the stack: convert the whole object.
			return b.posted(m, wholeInput)
		}
		f.add(kid.key, b.json(v, kid.shape))
	}
	return b.object(&f)
}

// json converts one value decoded by encoding/json.
func (b *inputBuilder) json(v any, s *inputShape) *ast.Term {
	switch v := v.(type) {
	case nil:
		return ast.InternedNullTerm
	case bool:
		return ast.InternedTerm(v)
	case float64:
		return b.number(v)
	case string:
		return b.string(v)
	case map[string]any:
		return b.posted(v, s)
	}
	t, err := ast.InterfaceToValue(v)
	if err != nil {
		// Only JSON-decoded values reach here, which always convert.
		return ast.InternedNullTerm
	}
	return b.term(t)
}

func (b *inputBuilder) window(w *Window, s *inputShape) *ast.Term {
	var f fields
	if s.get("count_1m") != nil {
		f.add(keyCount1m, b.int(w.Count1m))
	}
	if s.get("count_1h") != nil {
		f.add(keyCount1h, b.int(w.Count1h))
	}
	if s.get("count_24h") != nil {
		f.add(keyCount24h, b.int(w.Count24h))
	}
	if s.get("distinct_users_24h") != nil {
		f.add(keyUsers24h, b.int(w.DistinctUsers24h))
	}
	if s.get("distinct_devices_24h") != nil {
		f.add(keyDevices24h, b.int(w.DistinctDevices24h))
	}
	return b.object(&f)
}

func (b *inputBuilder) signals(sig *Signals, s *inputShape) *ast.Term {
	var f fields
	// A source not gathered is left out, as in the JSON document.
	var ng Sources
	if len(sig.NotGathered) > 0 {
		ng = sourcesOf(sig.NotGathered)
	}
	if k := s.get("verification"); k != nil && !ng.Has(SourceVerification) {
		v := &sig.Verification
		var g fields
		if k.get("status") != nil {
			g.add(keyStatus, b.string(v.Status))
		}
		if k.get("provider") != nil {
			g.add(keyProvider, b.string(v.Provider))
		}
		if k.get("score") != nil {
			g.add(keyScore, b.number(v.Score))
		}
		if k.get("reason_codes") != nil {
			g.add(keyReasonCodes, b.strings(v.ReasonCodes))
		}
		if k.get("age_days") != nil {
			g.add(keyAgeDays, b.number(v.AgeDays))
		}
		f.add(keyVerification, b.object(&g))
	}
	if k := s.get("velocity"); k != nil && !ng.Has(SourceVelocity) {
		var g fields
		if w := k.get("user"); w != nil {
			g.add(keyUser, b.window(&sig.Velocity.User, w))
		}
		if w := k.get("device"); w != nil {
			g.add(keyDevice, b.window(&sig.Velocity.Device, w))
		}
		if w := k.get("ip"); w != nil {
			g.add(keyIP, b.window(&sig.Velocity.IP, w))
		}
		f.add(keyVelocity, b.object(&g))
	}
	if k := s.get("device"); k != nil && !ng.Has(SourceDevice) {
		d := &sig.Device
		var g fields
		if k.get("known") != nil {
			g.add(keyKnown, ast.InternedTerm(d.Known))
		}
		if k.get("age_hours") != nil {
			g.add(keyAgeHours, b.number(d.AgeHours))
		}
		if k.get("users_seen") != nil {
			g.add(keyUsersSeen, b.int(d.UsersSeen))
		}
		if k.get("flagged") != nil {
			g.add(keyFlagged, ast.InternedTerm(d.Flagged))
		}
		f.add(keyDevice, b.object(&g))
	}
	if k := s.get("lists"); k != nil && !ng.Has(SourceLists) {
		f.add(keyLists, b.lists(sig.Lists, k))
	}
	if s.get("unavailable") != nil {
		f.add(keyUnavailable, b.strings(sig.Unavailable))
	}
	if s.get("not_gathered") != nil && len(sig.NotGathered) > 0 {
		f.add(keyNotGathered, b.strings(sig.NotGathered))
	}
	return b.object(&f)
}

func (b *inputBuilder) lists(lists map[string]bool, s *inputShape) *ast.Term {
	if len(lists) == 0 {
		return ast.InternedEmptyObject
	}
	if b.plan.lists != nil {
		return b.plan.lists[listsIndex(lists, s)]
	}
	if s.all || len(s.kids) > len(fields{}.items) {
		items := make([][2]*ast.Term, 0, len(lists))
		for k, on := range lists {
			items = append(items, [2]*ast.Term{b.string(k), ast.InternedTerm(on)})
		}
		return b.term(ast.NewObject(items...))
	}
	var f fields
	for i := range s.kids {
		if on, ok := lists[s.kids[i].name]; ok {
			f.add(s.kids[i].key, ast.InternedTerm(on))
		}
	}
	return b.object(&f)
}
