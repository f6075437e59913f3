package engine

import (
	"bytes"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"gopkg.in/yaml.v3"
)

// ReasonRegistryFile is a bundle's list of the reason codes it may emit, with their
// meanings.
const ReasonRegistryFile = "reason_codes.yaml"

// upperSnake is the form of a reason code (policies/reasoncodes_test.go).
var upperSnake = regexp.MustCompile(`^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$`)

// LintFiles checks what compiling a bundle (LoadVersion) does not: reason codes written
// in Rego are UPPER_SNAKE and given with a valid outcome (the engine refuses an unknown
// one only when its rule fires), and the codes of Rego and CEL policies are listed in the
// bundle's reason_codes.yaml when it has one (each with a meaning) and used with the
// outcome and by the actions it declares for them. Data files (data.json, data.yaml,
// data.yml) are parsed, and refused, by the loader; other JSON and YAML files (CEL case
// files, notes) are not data and not part of any policy, as in OPA's bundle mode, and are
// not checked. Both `verdict policy lint` (and publish) and the publish endpoint run it,
// so that a version the one refuses is not published through the other.
func LintFiles(files map[string][]byte) []Problem {
	var problems []Problem
	registry, regProblem := reasonRegistry(files)
	if regProblem != nil {
		problems = append(problems, *regProblem)
	}
	checkCode := func(file, action string, u CodeUse) {
		if !upperSnake.MatchString(u.Code) {
			problems = append(problems, Problem{File: file, Line: u.Line, Message: fmt.Sprintf("reason code %q must be UPPER_SNAKE", u.Code)})
			return
		}
		if registry == nil {
			return
		}
		reg, ok := registry[u.Code]
		if !ok {
			problems = append(problems, Problem{File: file, Line: u.Line,
				Message: fmt.Sprintf("reason code %q is not in %s: add it there with its meaning", u.Code, ReasonRegistryFile)})
			return
		}
		if reg.outcome != "" && u.Outcome != "" && u.Outcome != reg.outcome {
			if _, err := ParseOutcome(u.Outcome); err == nil {
				problems = append(problems, Problem{File: file, Line: u.OutcomeLine,
					Message: fmt.Sprintf("reason code %q is used with outcome %s; %s declares it %s", u.Code, u.Outcome, ReasonRegistryFile, reg.outcome)})
			}
		}
		if action != "" && len(reg.actions) > 0 && !slices.Contains(reg.actions, "any") && !slices.Contains(reg.actions, action) {
			problems = append(problems, Problem{File: file, Line: u.Line,
				Message: fmt.Sprintf("reason code %q is used by action %s; %s declares it for %s only", u.Code, action, ReasonRegistryFile, strings.Join(reg.actions, ", "))})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		b := files[name]
		switch {
		case strings.HasSuffix(name, ".rego") && !strings.HasSuffix(name, "_test.rego"):
			action := regoFileAction(name, b)
			for _, u := range LiteralReasonCodes(name, b) {
				if u.Outcome != "" {
					// The engine refuses an unknown outcome only when the rule fires.
					if _, err := ParseOutcome(u.Outcome); err != nil {
						problems = append(problems, Problem{File: name, Line: u.OutcomeLine, Message: fmt.Sprintf("reason code %q: %v", u.Code, err)})
					}
				}
				checkCode(name, action, u)
			}
		case strings.HasSuffix(name, ".cel.yaml") || strings.HasSuffix(name, ".cel.yml"):
			// Compiled by the loader, which refuses a code that is not UPPER_SNAKE and an
			// unknown outcome; the registry is checked here.
			action := celFileAction(b)
			for _, u := range LiteralReasonCodes(name, b) {
				if upperSnake.MatchString(u.Code) {
					checkCode(name, action, u)
				}
			}
		}
	}
	return problems
}

// regoFileAction returns the action of a Rego file in package verdict.<action>, or "".
func regoFileAction(name string, b []byte) string {
	m, err := ast.ParseModuleWithOpts(name, string(bytes.TrimPrefix(b, utf8BOM)), ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil || len(m.Package.Path) != 3 || m.Package.Path[1].Value.Compare(ast.String("verdict")) != 0 {
		return ""
	}
	a, ok := m.Package.Path[2].Value.(ast.String)
	if !ok || a == "lib" {
		return ""
	}
	return string(a)
}

// celFileAction returns the action a CEL policy file declares, or "".
func celFileAction(b []byte) string {
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) != nil {
		return ""
	}
	if _, v := topLevel(&doc, "action"); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
}

// registeredCode is what reason_codes.yaml declares for a code.
type registeredCode struct {
	actions []string
	outcome string // "" when it declares no outcome it can be checked against
}

// reasonRegistry returns the codes listed in the bundle's reason_codes.yaml, or nil when
// the bundle has none (codes are then only checked for their form).
func reasonRegistry(files map[string][]byte) (map[string]registeredCode, *Problem) {
	b, ok := files[ReasonRegistryFile]
	if !ok {
		return nil, nil
	}
	var reg struct {
		Codes map[string]struct {
			Actions []string `yaml:"actions"`
			Outcome string   `yaml:"outcome"`
			Meaning string   `yaml:"meaning"`
		} `yaml:"codes"`
	}
	if err := yaml.Unmarshal(b, &reg); err != nil {
		return nil, &Problem{File: ReasonRegistryFile, Message: "not valid YAML: " + err.Error()}
	}
	out := make(map[string]registeredCode, len(reg.Codes))
	for code, c := range reg.Codes {
		if c.Meaning == "" {
			return nil, &Problem{File: ReasonRegistryFile, Message: fmt.Sprintf("code %s has no meaning", code)}
		}
		rc := registeredCode{actions: c.Actions}
		if _, err := ParseOutcome(c.Outcome); err == nil {
			rc.outcome = c.Outcome // engine codes declare "—": their outcome is the fail mode's
		}
		out[code] = rc
	}
	return out, nil
}
