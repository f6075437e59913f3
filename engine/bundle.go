package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// Languages a policy can be written in.
const (
	LangRego = "rego"
	LangCEL  = "cel"
)

// Policy is one action's compiled, immutable policy version.
type Policy struct {
	Action   string
	Version  string // human label from the policy's metadata; the hash prefix when absent
	Hash     string // "sha256:<hex>" of every file the policy depends on
	Language string
	FailMode FailMode
	Files    []string
	eval     evaluator
	// thresholds are the policy's own defaults (Rego default_thresholds, CEL thresholds),
	// which data.thresholds.<action> overrides key by key; nil when it declares none.
	thresholds map[string]any
	// failModeAt is where FailMode is declared (file and line).
	failModeAt Problem
	// reads are the signal sources the policy can read (Reads).
	reads Sources
}

// Ref returns the reference a decision carries.
func (p *Policy) Ref() PolicyRef {
	return PolicyRef{Action: p.Action, Version: p.Version, Hash: p.Hash, Language: p.Language}
}

type evaluator interface {
	eval(ctx evalContext, in *Input) (Decision, error)
}

// PolicySet is an immutable set of compiled policies, one per action. It is safe for
// concurrent use. Reloading builds a new PolicySet and swaps it into the Engine.
type PolicySet struct {
	policies map[string]*Policy
	loadedAt time.Time
}

// Policy returns the policy for action and whether there is one.
func (s *PolicySet) Policy(action string) (*Policy, bool) {
	p, ok := s.policies[action]
	return p, ok
}

// Actions returns the actions with a policy, sorted.
func (s *PolicySet) Actions() []string {
	out := make([]string, 0, len(s.policies))
	for a := range s.policies {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// LoadedAt returns when the set was compiled.
func (s *PolicySet) LoadedAt() time.Time { return s.loadedAt }

type loadConfig struct {
	celCostLimit uint64
	data         map[string]any
	// dataFiles are the bundle's data files, hashed into every policy's version: any
	// policy may read them, and they change what it decides.
	dataFiles map[string][]byte
	now       func() time.Time
}

// LoadOption configures Load.
type LoadOption func(*loadConfig)

// WithCELCostLimit sets the runtime cost limit of each CEL expression (default 100,000).
func WithCELCostLimit(n uint64) LoadOption { return func(c *loadConfig) { c.celCostLimit = n } }

// WithData makes doc available to Rego policies as data (for example
// {"thresholds": {"payout": {"max_amount": 900}}} to override a threshold) and to CEL
// policies as overrides of their thresholds map under the same path.
func WithData(doc map[string]any) LoadOption { return func(c *loadConfig) { c.data = doc } }

var actionName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// ValidAction reports whether s is a well-formed action name: lowercase letters,
// digits and underscores, starting with a letter, at most 63 characters.
func ValidAction(s string) bool { return actionName.MatchString(s) }

// Load compiles every policy in fsys: each *.rego file except *_test.rego, and each
// *.cel.yaml file. Rego policies are packages verdict.<action> defining a decision
// rule; other Rego packages (such as verdict.lib) are libraries shared by all. CEL
// policies are one YAML file per action. Everything is compiled here, once; nothing is
// parsed at evaluation time.
//
// Load returns a *LoadError naming file:line for every file that fails to parse or
// compile, uses a forbidden builtin (network, non-deterministic, runtime), declares an
// invalid fail mode (payout may never fail open), or defines an action twice.
func Load(fsys fs.FS, opts ...LoadOption) (*PolicySet, error) {
	cfg := loadConfig{celCostLimit: 100_000, now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
	var regoFiles, celFiles, dataFiles []string
	var problems []Problem
	err := WalkBundle(fsys, func(p string) {
		switch {
		case strings.HasSuffix(p, "_test.rego"):
		case strings.HasSuffix(p, ".rego"):
			regoFiles = append(regoFiles, p)
		case strings.HasSuffix(p, ".cel.yaml"), strings.HasSuffix(p, ".cel.yml"):
			celFiles = append(celFiles, p)
		case isDataFile(p):
			dataFiles = append(dataFiles, p)
		}
	})
	var nre *NotRegularError
	switch {
	case errors.As(err, &nre):
		return nil, &LoadError{Problems: []Problem{{File: nre.Path, Message: "not a regular file (a policy bundle holds files and directories only)"}}}
	case err != nil:
		return nil, &LoadError{Problems: []Problem{{Message: fmt.Sprintf("read bundle: %v", err)}}}
	}
	if len(regoFiles)+len(celFiles) == 0 {
		return nil, &LoadError{Problems: []Problem{{Message: "bundle holds no *.rego or *.cel.yaml policy"}}}
	}
	if len(dataFiles) > 0 {
		data, contents, probs := loadData(fsys, dataFiles)
		if len(probs) > 0 {
			return nil, &LoadError{Problems: probs}
		}
		cfg.data = overlay(data, cfg.data) // WithData (a backtest sweep) wins over the files
		cfg.dataFiles = contents
	}
	set := &PolicySet{policies: map[string]*Policy{}, loadedAt: cfg.now()}
	add := func(p *Policy) {
		if prev, dup := set.policies[p.Action]; dup {
			problems = append(problems, Problem{File: p.Files[0], Message: fmt.Sprintf("action %q is already defined by %s", p.Action, strings.Join(prev.Files, ", "))})
			return
		}
		if p.Action == "payout" && p.FailMode == FailOpen {
			at := p.failModeAt
			if at.File == "" {
				at.File = p.Files[0]
			}
			at.Message = `action "payout" may not declare fail_mode open`
			problems = append(problems, at)
			return
		}
		set.policies[p.Action] = p
	}
	if len(regoFiles) > 0 {
		pols, probs := loadRego(fsys, regoFiles, cfg)
		problems = append(problems, probs...)
		for _, p := range pols {
			add(p)
		}
	}
	for _, f := range celFiles {
		p, probs := loadCEL(fsys, f, cfg)
		problems = append(problems, probs...)
		if p != nil {
			add(p)
		}
	}
	if len(problems) > 0 {
		return nil, &LoadError{Problems: problems}
	}
	if len(set.policies) == 0 {
		return nil, &LoadError{Problems: []Problem{{Message: "bundle defines no action: want package verdict.<action> with a decision rule, or a *.cel.yaml file"}}}
	}
	if probs := checkThresholdOverrides(set, cfg.data); len(probs) > 0 {
		return nil, &LoadError{Problems: probs}
	}
	return set, nil
}

// checkThresholdOverrides refuses overrides (data.thresholds.<action>.<name>, from the
// bundle's data files or WithData) that would silently change nothing or switch a rule
// off: a name the policy's defaults do not have (a typo), or a value of another JSON type
// than the default's ("10" for 10 makes `amount > "10"` false for every amount). A policy
// without defaults is not checked.
func checkThresholdOverrides(set *PolicySet, data map[string]any) []Problem {
	all, isObj := data["thresholds"].(map[string]any)
	if v, set := data["thresholds"]; set && !isObj {
		// No policy would find an override in it: every threshold would silently keep its
		// default.
		return []Problem{{Message: fmt.Sprintf("data thresholds must be an object of actions (thresholds.<action>.<name>), not a %s", jsonKind(v))}}
	}
	var problems []Problem
	for _, action := range slices.Sorted(maps.Keys(all)) {
		over, isObj := all[action].(map[string]any)
		p, known := set.policies[action]
		switch {
		case !known:
			problems = append(problems, Problem{Message: fmt.Sprintf("data thresholds.%s: the bundle has no policy for action %q", action, action)})
			continue
		case !isObj:
			problems = append(problems, Problem{File: p.Files[0], Message: fmt.Sprintf("data thresholds.%s must be an object of threshold names", action)})
			continue
		case p.thresholds == nil:
			continue
		}
		for _, name := range slices.Sorted(maps.Keys(over)) {
			def, ok := p.thresholds[name]
			if !ok {
				problems = append(problems, Problem{File: p.Files[0], Message: fmt.Sprintf("data thresholds.%s.%s: the %s policy has no such threshold (it has %s)",
					action, name, action, strings.Join(slices.Sorted(maps.Keys(p.thresholds)), ", "))})
				continue
			}
			if want, got := jsonKind(def), jsonKind(over[name]); want != got {
				problems = append(problems, Problem{File: p.Files[0], Message: fmt.Sprintf("data thresholds.%s.%s is a %s; the policy's default is a %s",
					action, name, got, want)})
			}
		}
	}
	return problems
}

// jsonKind names the JSON type of a decoded value.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case json.Number, float64, float32, int, int64, int32, uint, uint64, uint32:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// NotRegularError is a bundle entry that is neither a directory nor a regular file (nor a
// symbolic link to one): a FIFO, a device, a socket, a dangling link.
type NotRegularError struct{ Path string }

func (e *NotRegularError) Error() string { return e.Path + ": not a regular file" }

// WalkBundle calls fn, in lexical order, with the slash path of every file of the bundle in
// fsys: every regular file, or symbolic link to one, outside hidden files and directories
// (names starting with "."). Load, `verdict policy lint` and `publish` all read a bundle
// through it, so they see the same files. An entry of any other kind stops the walk with a
// *NotRegularError: opening a FIFO would block for ever.
func WalkBundle(fsys fs.FS, fn func(path string)) error {
	return fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != "." && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			// A symbolic link counts as what it points to: os.DirFS follows it when the
			// file is opened.
			st, err := fs.Stat(fsys, p)
			if err != nil || !st.Mode().IsRegular() {
				return &NotRegularError{Path: p}
			}
		}
		fn(p)
		return nil
	})
}

// BundleHash returns the content hash of a set of policy files (path → content), as
// "sha256:<hex>": SHA-256 over each cleaned path, its length and its content, in path
// order. It identifies a published policy version; a policy loaded from a bundle's
// files alone carries the same kind of hash over the files it depends on.
func BundleHash(files map[string][]byte) string { return contentHash(files) }

// contentHash hashes files (path and content) in path order.
func contentHash(files map[string][]byte) string {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	h := sha256.New()
	for _, n := range names {
		fmt.Fprintf(h, "%s\x00%d\x00", path.Clean(n), len(files[n]))
		h.Write(files[n])
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

func shortHash(h string) string {
	h = strings.TrimPrefix(h, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}
