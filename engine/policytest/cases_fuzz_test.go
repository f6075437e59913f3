package policytest

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
)

// FuzzParseCELCases: a CEL case file (YAML or JSON) of any content is refused with an error
// or gives one line number per case, each within the file; a case's input that is not a
// JSON document is reported by the case's run, not here.
func FuzzParseCELCases(f *testing.F) {
	shipped, err := os.ReadFile("../../policies/cel/login.cases.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(shipped, false)
	f.Add([]byte(`[{"name":"a","input":{"action":"login"},"want":{"outcome":"approve"}},
  {"name":"b","input":{},"want":{"outcome":"block","reasons":["X"]}}]`), true)
	f.Add([]byte("- &a [*a, *a]\n"), false)
	f.Add([]byte("- name: a\n  bogus: 1\n"), false)
	f.Add([]byte("- input: {1: {2: 3}}\n"), false)
	f.Add([]byte(`[{"name":"a"},`), true)
	f.Add([]byte(`{"name":"a"}`), true)
	f.Fuzz(func(t *testing.T, b []byte, isJSON bool) {
		cases, lines, err := parseCELCases(b, isJSON)
		if err != nil {
			return
		}
		if len(lines) != len(cases) {
			t.Fatalf("%d cases, %d lines", len(cases), len(lines))
		}
		n := 1 + bytes.Count(b, []byte("\n"))
		for i, l := range lines {
			if l < 0 || l > n {
				t.Fatalf("case %d at line %d of a %d-line file", i, l, n)
			}
		}
		for _, c := range cases {
			_, _ = json.Marshal(c.Input) // may fail (YAML keys that are not strings): never panic
		}
	})
}

// TestParseCELCasesEmptyCase: YAML's decoder drops a null item of the case list; it is an
// error naming its line instead of a case silently skipped that shifts later cases' lines.
func TestParseCELCasesEmptyCase(t *testing.T) {
	_, _, err := parseCELCases([]byte("- name: a\n-\n- name: c\n"), false)
	if err == nil || err.Error() != "line 2: an empty case" {
		t.Fatalf("err = %v, want line 2: an empty case", err)
	}
	cases, lines, err := parseCELCases([]byte("- name: a\n\n- name: c\n"), false)
	if err != nil || len(cases) != 2 || lines[1] != 3 || cases[1].Name != "c" {
		t.Fatalf("cases %+v lines %v err %v", cases, lines, err)
	}
}
