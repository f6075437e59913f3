package http_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	httpapi "github.com/verdict-engine/verdict/adapters/http"
	"github.com/verdict-engine/verdict/store"
)

const labelKeys = "labeller:label-secret-0123456789:label,checkout:decide-secret-0123456789:decide,root:admin-secret-0123456789:admin"

// seedDecisions stores n decisions with UUID ids and returns the ids.
func seedDecisions(t *testing.T, e *env, n int) []string {
	t.Helper()
	recs := make([]store.DecisionRecord, n)
	ids := make([]string, n)
	for i := range recs {
		ids[i] = fmt.Sprintf("0190a1b2-c3d4-7e5f-8a9b-%012d", i)
		recs[i] = store.DecisionRecord{ID: ids[i], Action: "login", SubjectID: fmt.Sprintf("user-%d", i), Outcome: "approve",
			Input: json.RawMessage(`{}`), Response: json.RawMessage(`{}`), CreatedAt: time.Now(), Actor: "seed"}
	}
	results, err := e.store.WriteDecisions(t.Context(), recs)
	if err != nil || errors.Join(results...) != nil {
		t.Fatalf("WriteDecisions: %v %v", err, results)
	}
	return ids
}

func pointers(t *testing.T, r resp) []string {
	t.Helper()
	var p httpapi.Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range p.Errors {
		out = append(out, f.Pointer)
	}
	return out
}

func TestLabelDecision(t *testing.T) {
	e := newEnv(t, options{keys: labelKeys})
	id := seedDecisions(t, e, 1)[0]
	path := "/v1/decisions/" + id + "/label"
	auth := []string{"Authorization", "Bearer label-secret-0123456789"}

	r := e.do(t, "POST", path, `{"label":"fraud","tags":["case-77","src:bank"]}`, auth...)
	if r.status != 201 {
		t.Fatalf("first label: %d %s", r.status, r.body)
	}
	if got := r.json(t); got["decision_id"] != id || got["label"] != "fraud" || got["actor"] != "labeller" || got["created_at"] == "" {
		t.Errorf("answer = %s", r.body)
	}
	r = e.do(t, "POST", path, `{"label":"fraud","tags":["case-78"]}`, "Authorization", "Bearer admin-secret-0123456789")
	if r.status != 200 {
		t.Fatalf("replacing label: %d %s", r.status, r.body)
	}
	if r = e.do(t, "POST", path, `{"label":"chargeback"}`, auth...); r.status != 201 || !strings.Contains(string(r.body), `"tags":[]`) {
		t.Fatalf("label without tags: %d %s", r.status, r.body)
	}
	labels, err := e.store.DecisionLabels(t.Context(), id)
	if err != nil || len(labels) != 2 || labels[1].Label != "fraud" || !slices.Equal(labels[1].Tags, []string{"case-78"}) || labels[1].Actor != "root" {
		t.Fatalf("DecisionLabels = %+v, %v", labels, err)
	}

	for _, tc := range []struct {
		name, path, body, ct string
		key                  string
		status               int
		code                 string
		pointers             []string
	}{
		{"unknown decision", "/v1/decisions/0190a1b2-c3d4-7e5f-8a9b-999999999999/label", `{"label":"fraud"}`, "", "", 404, httpapi.CodeNotFound, nil},
		{"unknown label", path, `{"label":"stolen"}`, "", "", 400, httpapi.CodeInvalidRequest, []string{"/label"}},
		{"bad tags", path, `{"label":"legit","tags":["ok","has space",""]}`, "", "", 400, httpapi.CodeInvalidRequest, []string{"/tags/1", "/tags/2"}},
		{"too many tags", path, `{"label":"legit","tags":["1","2","3","4","5","6","7","8","9","10","11","12","13","14","15","16","17"]}`, "", "", 400, httpapi.CodeInvalidRequest, []string{"/tags"}},
		{"unknown field", path, `{"label":"legit","note":"x"}`, "", "", 400, httpapi.CodeMalformedJSON, nil},
		{"tags not strings", path, `{"label":"legit","tags":[1]}`, "", "", 400, httpapi.CodeInvalidRequest, nil},
		{"empty body", path, ``, "", "", 400, httpapi.CodeMalformedJSON, nil},
		{"not JSON", path, `label=fraud`, "application/x-www-form-urlencoded", "", 415, httpapi.CodeUnsupportedMedia, nil},
		{"decide scope", path, `{"label":"fraud"}`, "", "decide-secret-0123456789", 403, httpapi.CodeForbidden, nil},
		{"no key", path, `{"label":"fraud"}`, "", "-", 401, httpapi.CodeUnauthorized, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := slices.Clone(auth)
			switch tc.key {
			case "":
			case "-":
				hdr = nil
			default:
				hdr = []string{"Authorization", "Bearer " + tc.key}
			}
			if tc.ct != "" {
				hdr = append(hdr, "Content-Type", tc.ct)
			}
			r := e.do(t, "POST", tc.path, tc.body, hdr...)
			assertProblem(t, r, tc.status, tc.code)
			if tc.pointers != nil {
				if got := pointers(t, r); !slices.Equal(got, tc.pointers) {
					t.Errorf("pointers = %q, want %q", got, tc.pointers)
				}
			}
		})
	}
	if labels2, _ := e.store.DecisionLabels(t.Context(), id); len(labels2) != 2 {
		t.Errorf("refused requests changed the labels: %+v", labels2)
	}
	if _, _, err := store.VerifyChain(t.Context(), e.store); err != nil {
		t.Fatal(err)
	}
}

func TestImportLabels(t *testing.T) {
	e := newEnv(t, options{keys: labelKeys})
	ids := seedDecisions(t, e, 1500)
	auth := []string{"Authorization", "Bearer label-secret-0123456789", "Content-Type", "text/csv; charset=utf-8"}
	if _, err := e.store.PutLabels(t.Context(), []store.OutcomeLabel{{DecisionID: ids[0], Label: "fraud", Actor: "x"}}, "req"); err != nil {
		t.Fatal(err)
	}

	// Far above the 64 KiB API body limit: this route has its own.
	var b strings.Builder
	b.WriteString("\ufeffdecision_id,label,tags\r\n")
	for _, id := range ids {
		fmt.Fprintf(&b, "%s,fraud,case-77|src:bank.v2|%s\r\n", id, strings.Repeat("x", 40))
	}
	fmt.Fprintf(&b, "%s,legit,\n", ids[1])
	if b.Len() < 100<<10 {
		t.Fatalf("test CSV is only %d bytes", b.Len())
	}
	r := e.do(t, "POST", "/v1/labels", b.String(), auth...)
	if r.status != 200 {
		t.Fatalf("import: %d %s", r.status, r.body)
	}
	if got := r.json(t); got["imported"] != float64(1501) || got["created"] != float64(1500) {
		t.Errorf("import answer = %s, want imported 1501, created 1500", r.body)
	}
	labels, err := e.store.DecisionLabels(t.Context(), ids[1])
	if err != nil || len(labels) != 2 || len(labels[0].Tags) != 3 || labels[0].Actor != "labeller" {
		t.Errorf("DecisionLabels = %+v, %v", labels, err)
	}
	seq, _, err := store.VerifyChain(t.Context(), e.store)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, body, ct string
		status         int
		code           string
		pointer        string
	}{
		{"bad label on line 3", "decision_id,label,tags\n" + ids[2] + ",legit,\n" + ids[3] + ",stolen,\n", "", 400, httpapi.CodeInvalidCSV, "/line/3"},
		{"bad tag", "decision_id,label,tags\n" + ids[2] + ",legit,a|b c\n", "", 400, httpapi.CodeInvalidCSV, "/line/2"},
		{"empty tag", "decision_id,label,tags\n" + ids[2] + ",legit,a||b\n", "", 400, httpapi.CodeInvalidCSV, "/line/2"},
		{"missing field", "decision_id,label,tags\n\n" + ids[2] + ",legit\n", "", 400, httpapi.CodeInvalidCSV, "/line/3"},
		{"bad quote", "decision_id,label,tags\n" + ids[2] + `,legit,"a` + "\n", "", 400, httpapi.CodeInvalidCSV, "/line/2"},
		{"duplicate pair", "decision_id,label,tags\n" + ids[2] + ",legit,\n" + ids[2] + ",legit,x\n", "", 400, httpapi.CodeInvalidCSV, "/line/3"},
		{"no header", ids[2] + ",legit,\n", "", 400, httpapi.CodeInvalidCSV, "/line/1"},
		{"empty body", "", "", 400, httpapi.CodeInvalidCSV, "/line/1"},
		{"unknown decision on line 4", "decision_id,label,tags\n" + ids[2] + ",legit,\n" + ids[3] + ",legit,\n" + "no-such-decision,fraud,x\n", "", 422, httpapi.CodeUnknownDecision, "/line/4"},
		{"JSON", `[{"decision_id":"x"}]`, "application/json", 415, httpapi.CodeUnsupportedMedia, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := slices.Clone(auth)
			if tc.ct != "" {
				hdr[3] = tc.ct
			}
			r := e.do(t, "POST", "/v1/labels", tc.body, hdr...)
			assertProblem(t, r, tc.status, tc.code)
			if got := pointers(t, r); tc.pointer != "" && !slices.Equal(got, []string{tc.pointer}) {
				t.Errorf("pointers = %q, want %q", got, tc.pointer)
			}
		})
	}
	if after, _, err := store.VerifyChain(t.Context(), e.store); err != nil || after != seq {
		t.Errorf("refused imports moved the audit head from %d to %d (%v)", seq, after, err)
	}
	if labels, _ := e.store.DecisionLabels(t.Context(), ids[2]); len(labels) != 1 {
		t.Errorf("refused imports stored labels: %+v", labels)
	}
	// Beyond the import limit, refused by the transport (app.Test refuses to send it).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go e.srv.App().Listener(ln)
	t.Cleanup(func() { _ = e.srv.App().Shutdown() })
	// Announce a body over the limit: the transport answers 413 from the headers alone,
	// without reading the body (sending it would race the server closing the connection).
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/labels HTTP/1.1\r\nHost: verdict\r\nContent-Type: text/csv\r\n"+
		"Authorization: Bearer label-secret-0123456789\r\nContent-Length: %d\r\n\r\ndecision_id,label,tags\n",
		httpapi.DefaultLabelImportLimit+1)
	if res, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil {
		t.Error(err)
	} else {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		assertProblem(t, resp{status: res.StatusCode, header: res.Header, body: b}, 413, httpapi.CodeBodyTooLarge)
	}

	for key, status := range map[string]int{"decide-secret-0123456789": 403, "": 401} {
		hdr := []string{"Content-Type", "text/csv"}
		if key != "" {
			hdr = append(hdr, "Authorization", "Bearer "+key)
		}
		if r := e.do(t, "POST", "/v1/labels", "decision_id,label,tags\n", hdr...); r.status != status {
			t.Errorf("import with key %q: %d, want %d", key, r.status, status)
		}
	}
}

func TestParseLabelsCSV(t *testing.T) {
	got, err := httpapi.ParseLabelsCSV(strings.NewReader("decision_id,label,tags\nd1,fraud,a|b\n\"d,2\",false_positive,\n"), "cli")
	want := []store.OutcomeLabel{
		{DecisionID: "d1", Label: "fraud", Tags: []string{"a", "b"}, Actor: "cli"},
		{DecisionID: "d,2", Label: "false_positive", Actor: "cli"},
	}
	if err != nil || len(got) != 2 || got[0].DecisionID != "d1" || !slices.Equal(got[0].Tags, want[0].Tags) ||
		got[1].DecisionID != "d,2" || got[1].Tags != nil || got[1].Actor != "cli" {
		t.Errorf("ParseLabelsCSV = %+v, %v; want %+v", got, err, want)
	}
	got, err = httpapi.ParseLabelsCSV(strings.NewReader("decision_id,label,tags\n"), "cli")
	if err != nil || len(got) != 0 {
		t.Errorf("header only: %+v, %v", got, err)
	}
}

func FuzzParseLabelsCSV(f *testing.F) {
	for _, s := range []string{
		"decision_id,label,tags\nd1,fraud,a|b\n",
		"\ufeffdecision_id,label,tags\r\nd1,legit,\r\n",
		"decision_id,label,tags\n\"d\n1\",chargeback,\"x|y\"\n",
		"decision_id,label,tags\nd1,fraud,\nd1,fraud,\n",
		"decision_id,label\nd1,fraud\n",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		labels, err := httpapi.ParseLabelsCSV(strings.NewReader(s), "fuzz")
		if err != nil {
			var ce *httpapi.LabelsCSVError
			if !errors.As(err, &ce) || ce.Line < 1 || ce.Reason == "" {
				t.Fatalf("error %v is not a LabelsCSVError with a line", err)
			}
			if labels != nil {
				t.Fatalf("labels returned with an error")
			}
			return
		}
		seen := map[[2]string]bool{}
		for _, l := range labels {
			if l.DecisionID == "" || !slices.Contains(store.Labels, l.Label) || len(l.Tags) > httpapi.MaxLabelTags || l.Actor != "fuzz" {
				t.Fatalf("invalid label accepted: %+v", l)
			}
			for _, tag := range l.Tags {
				if !store.ValidLabelTag(tag) {
					t.Fatalf("invalid tag accepted: %q", tag)
				}
			}
			if seen[[2]string{l.DecisionID, l.Label}] {
				t.Fatalf("duplicate pair accepted: %+v", l)
			}
			seen[[2]string{l.DecisionID, l.Label}] = true
		}
	})
}
