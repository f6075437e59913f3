package engine

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// ReasonRegistryFile is a bundle's list of the reason codes it may emit, with their
// meanings.
const ReasonRegistryFile = "reason_codes.yaml"

// upperSnake is the form of a reason code (policies/reasoncodes_test.go).
var upperSnake = regexp.MustCompile(`^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$`)

// LintFiles checks what compiling a bundle (LoadVersion) does not: reason codes written
// in Rego are UPPER_SNAKE, the codes of Rego and CEL policies are listed in the bundle's
// reason_codes.yaml when it has one (each with a meaning), and its JSON and YAML files
// that are not data files parse (data files are parsed, and refused, by the loader). Both
// `verdict policy lint` (and publish) and the publish endpoint run it, so that a version
// the one refuses is not published through the other.
func LintFiles(files map[string][]byte) []Problem {
	var problems []Problem
	registry, regProblem := reasonRegistry(files)
	if regProblem != nil {
		problems = append(problems, *regProblem)
	}
	checkCode := func(file string, line int, code string) {
		if !upperSnake.MatchString(code) {
			problems = append(problems, Problem{File: file, Line: line, Message: fmt.Sprintf("reason code %q must be UPPER_SNAKE", code)})
			return
		}
		if registry != nil && !registry[code] {
			problems = append(problems, Problem{File: file, Line: line,
				Message: fmt.Sprintf("reason code %q is not in %s: add it there with its meaning", code, ReasonRegistryFile)})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		b := files[name]
		if isDataFile(name) || name == ReasonRegistryFile {
			continue // parsed by the loader, or above, which name what is wrong
		}
		switch {
		case strings.HasSuffix(name, ".rego") && !strings.HasSuffix(name, "_test.rego"):
			for _, u := range LiteralReasonCodes(name, b) {
				checkCode(name, u.Line, u.Code)
			}
		case strings.HasSuffix(name, ".json"):
			if !json.Valid(b) {
				problems = append(problems, Problem{File: name, Message: "not valid JSON"})
			}
		case strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml"):
			if strings.HasSuffix(name, ".cel.yaml") || strings.HasSuffix(name, ".cel.yml") {
				// Compiled by the loader, which refuses a code that is not UPPER_SNAKE;
				// whether a code is registered is checked here.
				for _, u := range LiteralReasonCodes(name, b) {
					if upperSnake.MatchString(u.Code) {
						checkCode(name, u.Line, u.Code)
					}
				}
				continue
			}
			var v any
			if err := yaml.Unmarshal(b, &v); err != nil {
				problems = append(problems, Problem{File: name, Message: "not valid YAML: " + err.Error()})
			}
		}
	}
	return problems
}

// reasonRegistry returns the codes listed in the bundle's reason_codes.yaml, or nil when
// the bundle has none (codes are then only checked for their form).
func reasonRegistry(files map[string][]byte) (map[string]bool, *Problem) {
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
	out := make(map[string]bool, len(reg.Codes))
	for code, c := range reg.Codes {
		if c.Meaning == "" {
			return nil, &Problem{File: ReasonRegistryFile, Message: fmt.Sprintf("code %s has no meaning", code)}
		}
		out[code] = true
	}
	return out, nil
}
