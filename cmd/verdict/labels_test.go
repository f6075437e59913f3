package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/verdict-engine/verdict/store"
	"github.com/verdict-engine/verdict/store/sqlite"
)

func TestLabelsImport(t *testing.T) {
	dir := t.TempDir()
	st, err := sqlite.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	var recs []store.DecisionRecord
	for _, id := range []string{"d1", "d2"} {
		recs = append(recs, store.DecisionRecord{ID: id, Action: "login", SubjectID: "u-" + id, Outcome: "approve",
			Input: json.RawMessage(`{}`), Response: json.RawMessage(`{}`), CreatedAt: time.Now(), Actor: "seed"})
	}
	if _, err := st.WriteDecisions(t.Context(), recs); err != nil {
		t.Fatal(err)
	}
	st.Close()

	write := func(name, content string) string {
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	getenv := func(string) string { return "" }
	labels := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := runLabels(t.Context(), args, getenv, &out, &errOut)
		return out.String(), err
	}

	good := write("good.csv", "decision_id,label,tags\nd1,fraud,case-1|chargeback:visa\nd2,legit,\n")
	out, err := labels("import", "--data-dir", dir, "--actor", "ops-anna", good)
	if err != nil || !strings.Contains(out, "imported 2 labels (2 new)") {
		t.Fatalf("import = %q, %v", out, err)
	}
	// Flags may come after the file too, as with erase and policy.
	if out, err = labels("import", good, "--data-dir", dir); err != nil || !strings.Contains(out, "(0 new)") {
		t.Fatalf("second import = %q, %v", out, err)
	}

	for _, tc := range []struct {
		name  string
		args  []string
		usage bool
		want  string
	}{
		{"bad line", []string{"import", "--data-dir", dir, write("bad.csv", "decision_id,label,tags\nd1,legit,\nd2,stolen,\n")}, false, "bad.csv:3: label must be one of"},
		{"unknown decision", []string{"import", "--data-dir", dir, write("unk.csv", "decision_id,label,tags\nd1,chargeback,\nd9,fraud,\n")}, false, "unk.csv:3: no decision with this id"},
		{"missing file", []string{"import", "--data-dir", dir, filepath.Join(dir, "nope.csv")}, false, "no such file"},
		{"no file", []string{"import", "--data-dir", dir}, true, "exactly one CSV file"},
		{"two files", []string{"import", "--data-dir", dir, good, good}, true, "got 2 arguments"},
		{"no subcommand", nil, true, "missing subcommand"},
		{"unknown subcommand", []string{"export"}, true, "unknown subcommand"},
		{"unknown flag", []string{"import", "--nope", good}, true, "nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := labels(tc.args...)
			var ue usageError
			if err == nil || errors.As(err, &ue) != tc.usage || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error = %v (usage error %v), want one line containing %q (usage error %v)", err, errors.As(err, &ue), tc.want, tc.usage)
			}
		})
	}

	st, err = sqlite.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got, err := st.DecisionLabels(t.Context(), "d1")
	if err != nil || len(got) != 1 || got[0].Label != "fraud" || got[0].Actor != "cli" || len(got[0].Tags) != 2 {
		t.Errorf("DecisionLabels(d1) = %+v, %v; want only the fraud label from the last good import", got, err)
	}
	if _, _, err := store.VerifyChain(t.Context(), st); err != nil {
		t.Error(err)
	}
}
