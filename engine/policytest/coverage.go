package policytest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/cover"
	"gopkg.in/yaml.v3"

	"github.com/verdict-engine/verdict/engine"
)

// coverage collects what the tests covered: Rego files from OPA's cover package, and the
// reason codes each CEL policy returned.
type coverage struct {
	mu    sync.Mutex
	files []FileCoverage
	fired map[*engine.Policy]map[string]bool
}

func newCoverage() *coverage {
	return &coverage{fired: map[*engine.Policy]map[string]bool{}}
}

// fire records the reason codes a policy returned.
func (c *coverage) fire(p *engine.Policy, codes []string) {
	if p.Language != engine.LangCEL {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.fired[p]
	if m == nil {
		m = map[string]bool{}
		c.fired[p] = m
	}
	for _, code := range codes {
		m[code] = true
	}
}

// addRego records the line coverage of r's policy files (not its tests).
func (c *coverage) addRego(r *root, srcs []regoSource, modules map[string]*ast.Module, rep cover.Report) {
	owner := map[string]string{}
	for _, a := range r.set.Actions() {
		p, _ := r.set.Policy(a)
		if p.Language != engine.LangRego {
			continue
		}
		for _, f := range p.Files {
			owner[f] = a
		}
	}
	for _, s := range srcs {
		if s.test {
			continue
		}
		fc := FileCoverage{File: s.display, Language: engine.LangRego, Unit: "lines", Policy: owner[s.rel]}
		if fc.Policy == "" {
			fc.Policy = strings.TrimPrefix(modules[s.display].Package.Path.String(), "data.")
		}
		if fr := rep.Files[s.display]; fr != nil {
			fc.Covered, fc.Total = fr.CoveredLines, fr.CoveredLines+fr.NotCoveredLines
			missed := slices.Clone(fr.NotCovered)
			slices.SortFunc(missed, func(a, b cover.Range) int { return a.Compare(b) })
			for _, rg := range missed {
				m := fmt.Sprintf("%s:%d", s.display, rg.Start.Row)
				if rg.End.Row != rg.Start.Row {
					m += fmt.Sprintf("-%d", rg.End.Row)
				}
				if !slices.Contains(fc.Missed, m) {
					fc.Missed = append(fc.Missed, m)
				}
			}
		}
		c.files = append(c.files, fc)
	}
}

// celRules records, for every CEL policy, which of its rules fired in at least one case.
// A CEL rule's code is unique in its policy (the loader refuses duplicates), so a code
// returned names the rule that fired.
func (c *coverage) celRules(roots []*root) error {
	for _, r := range roots {
		for _, a := range r.set.Actions() {
			p, _ := r.set.Policy(a)
			if p.Language != engine.LangCEL {
				continue
			}
			display := r.display(p.Files[0])
			rules, err := celRuleCodes(filepath.Join(r.dir, filepath.FromSlash(p.Files[0])))
			if err != nil {
				return fmt.Errorf("coverage of %s: %w", display, err)
			}
			fc := FileCoverage{File: display, Policy: a, Language: engine.LangCEL, Unit: "rules", Total: len(rules)}
			for _, rl := range rules {
				if c.fired[p][rl.code] {
					fc.Covered++
				} else {
					fc.Missed = append(fc.Missed, fmt.Sprintf("%s (%s:%d)", rl.code, display, rl.line))
				}
			}
			c.files = append(c.files, fc)
		}
	}
	return nil
}

type celRuleRef struct {
	code string
	line int
}

// celRuleCodes reads the code and line of each rule of a CEL policy file.
func celRuleCodes(file string) ([]celRuleRef, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, nil
	}
	m := doc.Content[0]
	var out []celRuleRef
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != "rules" {
			continue
		}
		for _, rn := range m.Content[i+1].Content {
			for j := 0; j+1 < len(rn.Content); j += 2 {
				if rn.Content[j].Value == "code" {
					out = append(out, celRuleRef{code: rn.Content[j+1].Value, line: rn.Line})
				}
			}
		}
	}
	return out, nil
}

// report returns the file coverage in path order and the coverage of each policy.
func (c *coverage) report() ([]FileCoverage, []PolicyCoverage) {
	files := slices.Clone(c.files)
	slices.SortFunc(files, func(a, b FileCoverage) int { return strings.Compare(a.File, b.File) })
	var pols []PolicyCoverage
	for _, f := range files {
		i := slices.IndexFunc(pols, func(p PolicyCoverage) bool { return p.Policy == f.Policy && p.Language == f.Language })
		if i < 0 {
			pols = append(pols, PolicyCoverage{Policy: f.Policy, Language: f.Language, Unit: f.Unit})
			i = len(pols) - 1
		}
		pols[i].Covered += f.Covered
		pols[i].Total += f.Total
	}
	slices.SortFunc(pols, func(a, b PolicyCoverage) int {
		if c := strings.Compare(a.Policy, b.Policy); c != 0 {
			return c
		}
		return strings.Compare(a.Language, b.Language)
	})
	return files, pols
}
