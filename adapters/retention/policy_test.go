package retention

import (
	"strings"
	"testing"
	"time"

	"github.com/verdict-engine/verdict/store"
)

func TestDefaultPolicyParses(t *testing.T) {
	ps, err := Load("")
	if err != nil {
		t.Fatalf("embedded default: %v", err)
	}
	p, ok := ps.Lookup(store.DefaultRetentionPolicy)
	if !ok || ps.DefaultPolicy != store.DefaultRetentionPolicy {
		t.Fatalf("default policy %q missing: %+v", store.DefaultRetentionPolicy, ps)
	}
	// Conservative: nothing but raw payloads goes before five years.
	for class, per := range p.Periods {
		if class != store.ClassRawPayloads && (per.Kept() || time.Duration(per) < 5*365*24*time.Hour) {
			t.Errorf("default %s = %s, want at least 5y", class, per)
		}
	}
	if ps.Decisions.String() != "5y" || ps.Labels.String() != "5y" {
		t.Errorf("decisions %s, labels %s; want 5y", ps.Decisions, ps.Labels)
	}
}

func TestParsePeriod(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"12h": 12 * time.Hour, "90d": 90 * 24 * time.Hour, "2w": 14 * 24 * time.Hour, "2y": 730 * 24 * time.Hour, "keep": Keep,
	} {
		got, err := ParsePeriod(in)
		if err != nil || time.Duration(got) != want {
			t.Errorf("ParsePeriod(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0d", "-1d", "90", "d", "1.5d", "90D", "1m", "101y", "999999y", " 1d", "keep "} {
		if _, err := ParsePeriod(in); err == nil {
			t.Errorf("ParsePeriod(%q) accepted", in)
		}
	}
}

const goodJSON = `{"default_policy": "kyc-default",
 "policies": {
  "kyc-default": {"raw_evidence": "90d", "raw_payloads": "30d", "consent_records": "1y", "review_notes": "1y", "verification_outcomes": "2y"},
  "kyc-eu": {"raw_evidence": "30d", "raw_payloads": "7d", "consent_records": "keep", "review_notes": "keep", "verification_outcomes": "keep"}},
 "decisions": "730d", "labels": "keep"}`

func TestParseJSON(t *testing.T) {
	ps, err := Parse("r.json", []byte(goodJSON))
	if err != nil {
		t.Fatal(err)
	}
	eu, _ := ps.Lookup("kyc-eu")
	if eu.Periods[store.ClassRawEvidence].String() != "30d" || !eu.Periods[store.ClassVerificationOutcomes].Kept() ||
		ps.Decisions.String() != "2y" || !ps.Labels.Kept() || len(ps.Policies) != 2 {
		t.Errorf("parsed %+v", ps)
	}
}

func TestParseErrors(t *testing.T) {
	full := `raw_evidence: 90d
    raw_payloads: 30d
    consent_records: 1y
    review_notes: 1y
    verification_outcomes: 2y`
	file := func(policy string, rest string) string {
		return "policies:\n  kyc-default:\n    " + policy + "\n" + rest
	}
	for _, tc := range []struct{ name, data, want string }{
		{"empty", "", "r.yaml: empty policy file"},
		{"not a map", "[1, 2]", "r.yaml: "},
		{"unknown top-level key", file(full, "decisions: 1y\nlabels: 1y\nretention: 1d\n"), "r.yaml: line 10: unknown key retention"},
		{"unknown class", file(full+"\n    extracted_fields: 1d", "decisions: 1y\nlabels: 1y\n"), "r.yaml: policies.kyc-default.extracted_fields: unknown data class"},
		{"decisions per policy", file(full+"\n    decisions: 1d", "decisions: 1y\nlabels: 1y\n"), "policies.kyc-default.decisions: decisions is set once"},
		{"missing class", file("raw_evidence: 90d", "decisions: 1y\nlabels: 1y\n"), "r.yaml: policies.kyc-default.raw_payloads: missing"},
		{"bad period", file(strings.Replace(full, "30d", "30 days", 1), "decisions: 1y\nlabels: 1y\n"), `r.yaml: policies.kyc-default.raw_payloads: "30 days" is not a retention period`},
		{"number", file(strings.Replace(full, "30d", "30", 1), "decisions: 1y\nlabels: 1y\n"), `policies.kyc-default.raw_payloads: "30" is not a retention period`},
		{"null period", file(strings.Replace(full, "30d", "null", 1), "decisions: 1y\nlabels: 1y\n"), `policies.kyc-default.raw_payloads: missing period`},
		{"outlives session", file(strings.Replace(full, "raw_evidence: 90d", "raw_evidence: 3y", 1), "decisions: 1y\nlabels: 1y\n"), "policies.kyc-default.raw_evidence: 3y outlives verification_outcomes (2y)"},
		{"keep outlives session", file(strings.Replace(full, "review_notes: 1y", "review_notes: keep", 1), "decisions: 1y\nlabels: 1y\n"), "review_notes: keep outlives"},
		{"no decisions", file(full, "labels: 1y\n"), "r.yaml: decisions: missing"},
		{"bad labels", file(full, "decisions: 1y\nlabels: forever\n"), `r.yaml: labels: "forever" is not a retention period`},
		{"no policies", "decisions: 1y\nlabels: 1y\n", "r.yaml: policies: no policy defined"},
		{"undefined default", file(full, "default_policy: kyc-us\ndecisions: 1y\nlabels: 1y\n"), `r.yaml: default_policy: policy "kyc-us" is not defined`},
		{"bad name", "policies:\n  KYC Default:\n    " + full + "\ndecisions: 1y\nlabels: 1y\n", `r.yaml: policies: "KYC Default" is not a policy name`},
		{"duplicate key", file(full+"\n    raw_evidence: 1d", "decisions: 1y\nlabels: 1y\n"), "already defined"},
		{"two documents", file(full, "decisions: 1y\nlabels: 1y\n---\nlabels: 1y\n"), "r.yaml: more than one document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("r.yaml", []byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse = %v, want an error containing %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(goodJSON))
	f.Add(DefaultFile())
	f.Add([]byte("policies: {a: {raw_evidence: keep}}\ndecisions: 1h\nlabels: 1h"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := Parse("fuzz.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		// A parsed file is complete and consistent.
		if _, ok := ps.Lookup(ps.DefaultPolicy); !ok {
			t.Fatalf("default policy %q undefined", ps.DefaultPolicy)
		}
		for _, p := range ps.Policies {
			out := p.Periods[store.ClassVerificationOutcomes]
			for _, c := range store.SessionClasses {
				per, ok := p.Periods[c]
				if !ok || (!per.Kept() && per <= 0) {
					t.Fatalf("policy %s: %s = %v, %v", p.Name, c, per, ok)
				}
				if !out.Kept() && (per.Kept() || per > out) {
					t.Fatalf("policy %s: %s outlives the session", p.Name, c)
				}
				if _, err := ParsePeriod(per.String()); err != nil {
					t.Fatalf("period %v does not round-trip: %v", per, err)
				}
			}
		}
	})
}
