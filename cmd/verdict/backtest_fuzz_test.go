package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/verdict-engine/verdict/store"
)

// FuzzParseSweep: any --sweep value is refused with a one-line error or gives a sweep of
// 1 to 200 ascending values for a valid action.
func FuzzParseSweep(f *testing.F) {
	for _, s := range []string{"payout.amount_limit=100:500:100", "amount=0.5:0.9:0.1", "x=-Inf:5:1",
		"payout.x=NaN:1:1", "payout.x=1e308:-1e308:1", "login.x=0:1:1e-320", "x=1:2", "=1:2:3", "Payout!.x=1:2:1"} {
		f.Add(s, "")
		f.Add(s, "payout")
	}
	f.Fuzz(func(t *testing.T, s, action string) {
		sw, err := parseSweep(s, action)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		if sw.Action == "" || sw.Name == "" || len(sw.Values) == 0 || len(sw.Values) > 200 {
			t.Fatalf("parseSweep(%q, %q) = %+v", s, action, sw)
		}
		for i := 1; i < len(sw.Values); i++ {
			if !(sw.Values[i] > sw.Values[i-1]) {
				t.Fatalf("parseSweep(%q, %q): values not ascending: %v", s, action, sw.Values)
			}
		}
	})
}

// FuzzBacktestExport: whatever file `verdict backtest --input` is given (JSON lines or
// CSV), reading and decoding it ends in a value or an error, never a panic; and a decision
// written by `verdict seed --out` / `golden export` reads back as it was.
func FuzzBacktestExport(f *testing.F) {
	f.Add([]byte("id,action,outcome,created_at,input\nd1,payout,block,2026-01-02T03:04:05Z,\"{\"\"action\"\":\"\"payout\"\"}\"\n"), "user-1", "a,b\"c\nd", true, uint8(1))
	f.Add([]byte(`{"id":"d1","action":"payout","outcome":"approve","input":{"action":"payout","subject":{"id":"u"}},"created_at":"2026-01-02T03:04:05Z","labels":[{"label":"fraud"}]}`+"\n"), "", "", false, uint8(0))
	f.Add([]byte("id\n\"unterminated"), "u\u2028", "\x00", true, uint8(3))
	f.Add([]byte(`{"input":{"signals":{"velocity":"x"}}}`), "u", "n", false, uint8(2))
	f.Add([]byte(""), "a\r\nb", "c\rd", true, uint8(7))
	f.Fuzz(func(t *testing.T, file []byte, subject, note string, isCSV bool, labels uint8) {
		ctx := context.Background()
		read := func(r *bytes.Reader, isCSV bool) ([]btItem, error) {
			var items []btItem
			err := fileSource(r, isCSV)(ctx, func(it btItem) error {
				decodeItem(&it)
				items = append(items, it)
				return nil
			})
			return items, err
		}
		if _, err := read(bytes.NewReader(file), isCSV); err != nil && strings.ContainsAny(err.Error(), "\n\r") {
			t.Fatalf("error is not one line: %q", err)
		}

		// Round trip of one decision with fuzzed text inside its input.
		if !utf8.ValidString(subject) || !utf8.ValidString(note) {
			return // stored strings are valid UTF-8: JSON decoding of the request replaced the rest
		}
		input, err := json.Marshal(map[string]any{"action": "payout", "subject": map[string]any{"id": subject}, "context": map[string]any{"note": note}})
		if err != nil {
			t.Fatal(err)
		}
		at := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
		d := store.LabeledDecision{DecisionRecord: store.DecisionRecord{ID: "d-" + subject, Action: "payout", SubjectID: subject, Outcome: "review",
			Score: 40, ReasonCodes: []string{"A", "B"}, PolicyVersion: "v1", PolicyHash: "sha256:00", Input: input, Response: json.RawMessage(`{}`), CreatedAt: at}}
		var wantLabels []string
		for i, l := range []string{"fraud", "false_positive", "legitimate"} {
			if labels&(1<<i) != 0 {
				d.Labels = append(d.Labels, store.OutcomeLabel{Label: l, CreatedAt: at})
				wantLabels = append(wantLabels, l)
			}
		}
		var buf bytes.Buffer
		w := newExportWriter(&buf, isCSV)
		if err := w.write(&d); err != nil {
			t.Fatal(err)
		}
		if err := w.flush(); err != nil {
			t.Fatal(err)
		}
		items, err := read(bytes.NewReader(buf.Bytes()), isCSV)
		if err != nil || len(items) != 1 {
			t.Fatalf("read back %q: %d items, %v", buf.String(), len(items), err)
		}
		it := items[0]
		if isCSV && strings.Contains(subject, "\r\n") {
			// encoding/csv reads CR LF inside a field as LF (docs/backtest.md says so).
			subjectCSV := strings.ReplaceAll(subject, "\r\n", "\n")
			d.ID, d.SubjectID = "d-"+subjectCSV, subjectCSV
		}
		if it.err != nil {
			t.Fatalf("decode %q: %v", buf.String(), it.err)
		}
		if it.rec.ID != d.ID || it.rec.Action != d.Action || it.rec.SubjectID != d.SubjectID || it.rec.Outcome != d.Outcome ||
			!it.rec.CreatedAt.Equal(at) || strings.Join(it.labels, ";") != strings.Join(wantLabels, ";") {
			t.Fatalf("read back %+v, labels %q from %q", it.rec, it.labels, buf.String())
		}
		if got := it.in.Subject["id"]; got != subject || it.in.Context["note"] != note {
			t.Fatalf("input read back as subject %q, note %q; want %q, %q", got, it.in.Context["note"], subject, note)
		}
	})
}
