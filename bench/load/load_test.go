package load

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestMixSameRequestsInEveryFormat(t *testing.T) {
	m := DefaultMix()
	v, err := m.Bodies(FormatVerdict, 500)
	if err != nil {
		t.Fatal(err)
	}
	o, err := m.Bodies(FormatOPA, 500)
	if err != nil {
		t.Fatal(err)
	}
	for i := range v {
		var opa struct {
			Input map[string]json.RawMessage `json:"input"`
		}
		if err := json.Unmarshal(o[i], &opa); err != nil {
			t.Fatalf("opa body %d: %v", i, err)
		}
		if _, ok := opa.Input["signals"]; !ok {
			t.Fatalf("opa body %d has no signals: %s", i, o[i])
		}
		delete(opa.Input, "signals")
		var req map[string]json.RawMessage
		if err := json.Unmarshal(v[i], &req); err != nil {
			t.Fatalf("verdict body %d: %v", i, err)
		}
		a, _ := json.Marshal(opa.Input)
		b, _ := json.Marshal(req)
		if !bytes.Equal(a, b) {
			t.Fatalf("body %d differs:\nopa input %s\nverdict   %s", i, a, b)
		}
	}
}

func TestMixShape(t *testing.T) {
	bodies, err := DefaultMix().Bodies(FormatVerdict, 4000)
	if err != nil {
		t.Fatal(err)
	}
	// The decide endpoint rejects unknown fields: keep to its sections.
	type decide struct {
		Action   string         `json:"action"`
		Subject  map[string]any `json:"subject"`
		Device   map[string]any `json:"device"`
		Context  map[string]any `json:"context"`
		Behavior map[string]any `json:"behavior"`
	}
	users := map[any]bool{}
	risky := 0
	for i, b := range bodies {
		var d decide
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("body %d: %v: %s", i, err, b)
		}
		users[d.Subject["id"]] = true
		if d.Context["payout_method"] == "crypto" || d.Behavior["bot_score"] == 0.9 ||
			strings.HasPrefix(d.Device["id"].(string), "shared-") || strings.HasPrefix(d.Context["ip"].(string), "198.51.100.") {
			risky++
		}
	}
	if share := float64(risky) / float64(len(bodies)); share < 0.07 || share > 0.13 {
		t.Errorf("risky share %.3f, want about 0.10", share)
	}
	if len(users) < 3500 {
		t.Errorf("%d distinct users in %d requests, want many", len(users), len(bodies))
	}
}

func TestMixRejectsBadSettings(t *testing.T) {
	for name, m := range map[string]Mix{
		"no action": {Users: 1},
		"no users":  {Action: "payout"},
		"risky > 1": {Action: "payout", Users: 1, Risky: 2},
	} {
		if _, err := m.Bodies(FormatVerdict, 1); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := DefaultMix().Bodies("xml", 1); err == nil {
		t.Error("unknown format: no error")
	}
}

func TestOutcome(t *testing.T) {
	tests := []struct {
		f       Format
		body    string
		want    string
		wantErr bool
	}{
		{FormatVerdict, `{"decision_id":"x","outcome":"step_up"}`, "step_up", false},
		{FormatOPA, `{"result":{"outcome":"block","score":100}}`, "block", false},
		{FormatOPA, `{}`, "", true}, // OPA without the policy
		{FormatOPA, `{"outcome":"allow"}`, "", true},
		{FormatVerdict, `not json`, "", true},
	}
	for _, tt := range tests {
		got, err := tt.f.Outcome([]byte(tt.body))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("%s.Outcome(%s) = %q, %v; want %q, error %v", tt.f, tt.body, got, err, tt.want, tt.wantErr)
		}
	}
}

func target(t *testing.T, h http.HandlerFunc) Target {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	bodies, err := DefaultMix().Bodies(FormatVerdict, 64)
	if err != nil {
		t.Fatal(err)
	}
	return Target{URL: srv.URL + "/v1/decide", Bodies: NewBodies(bodies)}
}

// A server slower than the offered rate builds a queue; latency from the scheduled time
// must show it, where latency from the send (coordinated omission) would show 20 ms.
func TestOpenLoopMeasuresFromSchedule(t *testing.T) {
	tg := target(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
		w.Write([]byte(`{"outcome":"allow"}`))
	})
	res, err := OpenLoop{Rate: 100, Duration: time.Second, Workers: 1}.Run(context.Background(), tg)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 100 || res.Errors != 0 || res.Missed != 0 {
		t.Fatalf("ok %d, errors %d, missed %d; want 100, 0, 0", res.OK, res.Errors, res.Missed)
	}
	if res.Latency.P50 < 200 {
		t.Errorf("p50 %.1f ms, want the queue (about 500 ms) counted", res.Latency.P50)
	}
	if res.MaxInFlight != 1 {
		t.Errorf("max in flight %d, want 1 (the one worker)", res.MaxInFlight)
	}
	// The queue is the server's doing: the pacer itself stayed on time.
	if res.DispatchLag == nil || res.DispatchLag.P50 > 5 {
		t.Errorf("dispatch lag %+v, want the pacer on time", res.DispatchLag)
	}
}

func TestOpenLoopCountsErrorsAndObservesWindow(t *testing.T) {
	var n atomic.Int64
	tg := target(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%10 == 0 {
			http.Error(w, `{"title":"boom"}`, http.StatusInternalServerError)
			return
		}
		w.Write([]byte(`{}`))
	})
	var phases []Phase
	res, err := OpenLoop{Rate: 400, Warmup: 250 * time.Millisecond, Duration: 500 * time.Millisecond,
		Observe: func(p Phase) { phases = append(phases, p) }}.Run(context.Background(), tg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 200 {
		t.Errorf("requests %d, want 200 (the warm-up excluded)", res.Requests)
	}
	if res.Errors < 15 || res.Errors > 25 || res.Status["500"] != res.Errors {
		t.Errorf("errors %d, status %v; want about 20 × 500", res.Errors, res.Status)
	}
	if len(res.ErrorSamples) == 0 || !strings.Contains(res.ErrorSamples[0], "status 500") {
		t.Errorf("error samples %q", res.ErrorSamples)
	}
	if len(phases) != 2 || phases[0] != PhaseMeasure || phases[1] != PhaseDone {
		t.Errorf("observed %v, want [measure done]", phases)
	}
}

func TestClosedLoop(t *testing.T) {
	tg := target(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{}`)) })
	res, err := ClosedLoop{Conns: 4, Warmup: 100 * time.Millisecond, Duration: 300 * time.Millisecond}.Run(context.Background(), tg)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK < 100 || res.Errors != 0 || res.Throughput <= 0 || res.Latency.Count == 0 {
		t.Errorf("result %+v", res)
	}
}

func TestRunStopsWhenCancelled(t *testing.T) {
	tg := target(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{}`)) })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := (OpenLoop{Rate: 100, Duration: time.Minute}).Run(ctx, tg); err == nil {
		t.Error("open loop: no error after cancel")
	}
	if _, err := (ClosedLoop{Conns: 2, Duration: time.Minute}).Run(ctx, tg); err == nil {
		t.Error("closed loop: no error after cancel")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s to stop", d)
	}
}

func TestProbe(t *testing.T) {
	ok := target(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"result":{"outcome":"review"}}`)) })
	got, err := Probe(context.Background(), ok, FormatOPA, 5)
	if err != nil || got["review"] != 5 {
		t.Errorf("Probe = %v, %v; want 5 reviews", got, err)
	}
	empty := target(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{}`)) })
	if _, err := Probe(context.Background(), empty, FormatOPA, 5); err == nil {
		t.Error("Probe of a server answering {}: no error")
	}
}

func TestMerge(t *testing.T) {
	a := &Result{Mode: "open", Rate: 10, Seconds: 1, Requests: 3, OK: 2, Errors: 1, Status: map[string]int64{"500": 1}, latNs: []int64{1e6, 3e6}}
	b := &Result{Mode: "open", Rate: 10, Seconds: 1, Requests: 2, OK: 2, latNs: []int64{2e6, 4e6}}
	m := Merge(a, b)
	if m.Requests != 5 || m.OK != 4 || m.Errors != 1 || m.Status["500"] != 1 || m.Throughput != 2 {
		t.Errorf("merged counts %+v", m)
	}
	if m.Latency.Count != 4 || m.Latency.P50 != 2 || m.Latency.Max != 4 {
		t.Errorf("merged latency %+v, want p50 2 ms, max 4 ms over 4 samples", m.Latency)
	}
}
