// Package retention deletes, on schedule, what retention policies say Verdict no longer
// needs to keep: evidence blobs and pointers, raw provider payloads, consent records,
// review rows, verification sessions, decisions and outcome labels.
//
// Policies are data: a YAML (or JSON) file of named per-jurisdiction policies for the
// classes bound to a verification session (a session names its policy in
// RetentionPolicy), and one schedule for decisions and labels. Every deletion batch
// leaves one retention.deleted audit event; the audit log itself, which holds ids and
// hashes only, is never deleted.
package retention

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/verdict-engine/verdict/store"
)

//go:embed default.yaml
var defaultPolicy []byte

// DefaultFile returns the text of the embedded default policy file.
func DefaultFile() []byte { return bytes.Clone(defaultPolicy) }

// Keep is the period of a class that is never deleted.
const Keep time.Duration = -1

// maxPeriod bounds a period (100 years), so that cutoffs never overflow.
const maxPeriod = 100 * 365 * 24 * time.Hour

// Period is how long a class is kept: a positive duration, or Keep.
type Period time.Duration

// Kept reports whether the class is never deleted.
func (p Period) Kept() bool { return time.Duration(p) == Keep }

// Cutoff returns the time before which records are due at now; ok is false for Keep.
func (p Period) Cutoff(now time.Time) (time.Time, bool) {
	if p.Kept() {
		return time.Time{}, false
	}
	return now.Add(-time.Duration(p)), true
}

func (p Period) String() string {
	if p.Kept() {
		return "keep"
	}
	d := time.Duration(p)
	day := 24 * time.Hour
	switch {
	case d%(365*day) == 0:
		return strconv.FormatInt(int64(d/(365*day)), 10) + "y"
	case d%day == 0:
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
}

var periodRE = regexp.MustCompile(`^([1-9][0-9]{0,5})([hdwy])$`)

// ParsePeriod parses "keep" or <n><unit> with unit h (hours), d (days), w (weeks) or y
// (365 days); n is a positive integer and the whole at most 100 years.
func ParsePeriod(s string) (Period, error) {
	if s == "keep" {
		return Period(Keep), nil
	}
	m := periodRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not a retention period (want e.g. 12h, 90d, 6w, 2y, or keep)", s)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	unit := map[string]time.Duration{"h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour, "y": 365 * 24 * time.Hour}[m[2]]
	if n > int64(maxPeriod/unit) {
		return 0, fmt.Errorf("%q is longer than 100y (use keep)", s)
	}
	return Period(time.Duration(n) * unit), nil
}

// Policy is one named policy: a period for every session class.
type Policy struct {
	Name    string
	Periods map[string]Period // by class: store.SessionClasses
}

// Policies is a parsed policy file.
type Policies struct {
	Source        string // the file name, or "(embedded default)"
	DefaultPolicy string // the policy of sessions that name none
	Policies      []Policy
	Decisions     Period
	Labels        Period
}

// Lookup returns the named policy.
func (ps *Policies) Lookup(name string) (Policy, bool) {
	for _, p := range ps.Policies {
		if p.Name == name {
			return p, true
		}
	}
	return Policy{}, false
}

// fileSchema is the file's shape; every key is checked by hand for clear errors.
type fileSchema struct {
	DefaultPolicy *string                       `yaml:"default_policy"`
	Policies      map[string]map[string]*string `yaml:"policies"`
	Decisions     *string                       `yaml:"decisions"`
	Labels        *string                       `yaml:"labels"`
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

// Parse parses and validates a policy file (YAML, or JSON, which YAML reads as well).
// name is the file name its errors start with ("name: field: problem"). Unknown keys,
// a missing class, a malformed period, a session class kept longer than its
// verification_outcomes, and a default_policy that is not defined are all errors.
func Parse(name string, data []byte) (*Policies, error) {
	fail := func(field, format string, args ...any) error {
		if field == "" {
			return fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...))
		}
		return fmt.Errorf("%s: %s: %s", name, field, fmt.Sprintf(format, args...))
	}
	var f fileSchema
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fail("", "empty policy file")
		}
		return nil, fail("", "%s", yamlError(err))
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fail("", "more than one document")
	}
	ps := &Policies{Source: name, DefaultPolicy: store.DefaultRetentionPolicy}
	if f.DefaultPolicy != nil {
		ps.DefaultPolicy = *f.DefaultPolicy
		if !nameRE.MatchString(ps.DefaultPolicy) {
			return nil, fail("default_policy", "%q is not a policy name (lower case letters, digits, '.', '_', '-')", ps.DefaultPolicy)
		}
	}
	if len(f.Policies) == 0 {
		return nil, fail("policies", "no policy defined")
	}
	names := make([]string, 0, len(f.Policies))
	for n := range f.Policies {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if !nameRE.MatchString(n) {
			return nil, fail("policies", "%q is not a policy name (lower case letters, digits, '.', '_', '-')", n)
		}
		p := Policy{Name: n, Periods: map[string]Period{}}
		classes := f.Policies[n]
		keys := make([]string, 0, len(classes))
		for k := range classes {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			field := "policies." + n + "." + k
			if !store.IsSessionClass(k) {
				if k == store.ClassDecisions || k == store.ClassLabels {
					return nil, fail(field, "%s is set once, at the top level, not per policy", k)
				}
				return nil, fail(field, "unknown data class (want one of %s)", strings.Join(store.SessionClasses, ", "))
			}
			if classes[k] == nil {
				return nil, fail(field, "missing period")
			}
			per, err := ParsePeriod(*classes[k])
			if err != nil {
				return nil, fail(field, "%v", err)
			}
			p.Periods[k] = per
		}
		for _, c := range store.SessionClasses {
			if _, ok := p.Periods[c]; !ok {
				return nil, fail("policies."+n+"."+c, "missing (every policy sets every session class; use keep to never delete)")
			}
		}
		outcomes := p.Periods[store.ClassVerificationOutcomes]
		for _, c := range store.SessionClasses {
			if per := p.Periods[c]; !outcomes.Kept() && (per.Kept() || per > outcomes) {
				return nil, fail("policies."+n+"."+c, "%s outlives verification_outcomes (%s): a session's data cannot be kept longer than the session", per, outcomes)
			}
		}
		ps.Policies = append(ps.Policies, p)
	}
	if _, ok := ps.Lookup(ps.DefaultPolicy); !ok {
		return nil, fail("default_policy", "policy %q is not defined under policies", ps.DefaultPolicy)
	}
	for _, top := range []struct {
		field string
		v     *string
		out   *Period
	}{{"decisions", f.Decisions, &ps.Decisions}, {"labels", f.Labels, &ps.Labels}} {
		if top.v == nil {
			return nil, fail(top.field, "missing (use keep to never delete)")
		}
		per, err := ParsePeriod(*top.v)
		if err != nil {
			return nil, fail(top.field, "%v", err)
		}
		*top.out = per
	}
	return ps, nil
}

// Load parses the file at path, or the embedded default when path is "".
func Load(path string) (*Policies, error) {
	if path == "" {
		return Parse("(embedded default)", defaultPolicy)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("retention policy: %w", err)
	}
	return Parse(path, data)
}

var (
	unknownFieldRE = regexp.MustCompile(`field (\S+) not found in type \S+`)
	typeRE         = regexp.MustCompile(`cannot unmarshal (\S+)(?: ` + "`" + `[^` + "`" + `]*` + "`" + `)? into \S+`)
)

// yamlError renders a decoding error on one line, in the file's terms.
func yamlError(err error) string {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	for i, m := range msgs {
		m = strings.TrimPrefix(m, "yaml: ")
		m = unknownFieldRE.ReplaceAllString(m, "unknown key $1 (want default_policy, policies, decisions, labels)")
		m = typeRE.ReplaceAllString(m, "unexpected $1 (want a mapping of names to periods)")
		msgs[i] = strings.Join(strings.Fields(m), " ")
	}
	return strings.Join(msgs, "; ")
}
