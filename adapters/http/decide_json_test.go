package http

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/verdict-engine/verdict/engine"
)

// checkDecideJSON asserts that appendJSON writes exactly json.Marshal's bytes, or fails
// exactly when it does, with the same error, leaving dst as it was.
func checkDecideJSON(t *testing.T, r *decideResponse) {
	t.Helper()
	want, wantErr := json.Marshal(*r)
	prefix := []byte("prefix")
	got, err := r.appendJSON(bytes.Clone(prefix))
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("appendJSON error %v, json.Marshal error %v", err, wantErr)
	}
	if err != nil {
		if err.Error() != wantErr.Error() {
			t.Fatalf("appendJSON error %q, json.Marshal error %q", err, wantErr)
		}
		if !bytes.Equal(got, prefix) {
			t.Fatalf("appendJSON changed dst on error: %q", got)
		}
		return
	}
	if !bytes.HasPrefix(got, prefix) {
		t.Fatalf("appendJSON lost dst: %q", got)
	}
	if got := got[len(prefix):]; !bytes.Equal(got, want) {
		t.Fatalf("appendJSON differs from json.Marshal\n got: %s\nwant: %s", got, want)
	}
}

func baseDecideResponse() decideResponse {
	return decideResponse{
		DecisionID: "0190c2d4-7b1e-7c3a-9f1e-2b3c4d5e6f70", Action: "payout", Outcome: engine.Review, Score: 72.5,
		Reasons: []engine.Reason{
			{Code: "velocity_high", Outcome: engine.Review, Message: "12 payouts in the last hour", Signal: "velocity.user.count_1h", Value: 12.0, Threshold: 10.0, Score: 40},
			{Code: "new_device", Outcome: engine.StepUp, Message: "device first seen 2h ago", Signal: "device.age_hours", Value: 2.0, Score: 20},
		},
		StepUp:             "otp",
		Policy:             policyRef{Action: "payout", Version: "v42", Hash: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
		SignalsUnavailable: []string{},
		CreatedAt:          time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC),
	}
}

func TestDecideResponseJSON(t *testing.T) {
	reason := func(v, th any) []engine.Reason {
		return []engine.Reason{{Code: "c", Outcome: engine.Block, Message: "m", Signal: "s", Value: v, Threshold: th}}
	}
	berlin := time.FixedZone("CET", 3600)
	if loc, err := time.LoadLocation("Europe/Berlin"); err == nil {
		berlin = loc
	}
	var nilMap map[string]any
	var nilSlice []any
	var nilPtr *float64
	tests := []struct {
		name string
		edit func(r *decideResponse)
	}{
		{"base", func(r *decideResponse) {}},
		{"empty reasons", func(r *decideResponse) { r.Reasons = []engine.Reason{} }},
		{"nil reasons", func(r *decideResponse) { r.Reasons = nil }},
		{"no step up", func(r *decideResponse) { r.StepUp = "" }},
		{"nil signals unavailable", func(r *decideResponse) { r.SignalsUnavailable = nil }},
		{"signals unavailable", func(r *decideResponse) { r.SignalsUnavailable = []string{"velocity", "verification<&>"} }},
		{"degraded no causes", func(r *decideResponse) { r.Degraded = &degraded{FailMode: "closed"} }},
		{"degraded empty causes", func(r *decideResponse) { r.Degraded = &degraded{FailMode: "open", Causes: []string{}} }},
		{"degraded causes", func(r *decideResponse) {
			r.Degraded = &degraded{FailMode: "review", Causes: []string{engine.CausePolicyError, engine.CauseSignalsUnavailable}, Stored: true}
		}},
		{"outcome approve", func(r *decideResponse) { r.Outcome = engine.Approve }},
		{"outcome step up", func(r *decideResponse) { r.Outcome = engine.StepUp }},
		{"outcome block", func(r *decideResponse) { r.Outcome = engine.Block }},
		{"outcome invalid", func(r *decideResponse) { r.Outcome = 0 }},
		{"reason outcome invalid", func(r *decideResponse) { r.Reasons[1].Outcome = 9 }},
		{"score zero", func(r *decideResponse) { r.Score = 0 }},
		{"score negative zero", func(r *decideResponse) { r.Score = math.Copysign(0, -1) }},
		{"score tiny", func(r *decideResponse) { r.Score = 1e-7 }},
		{"score huge", func(r *decideResponse) { r.Score = 1e21 }},
		{"score just below 1e21", func(r *decideResponse) { r.Score = 999999999999999900000 }},
		{"score NaN", func(r *decideResponse) { r.Score = math.NaN() }},
		{"score Inf", func(r *decideResponse) { r.Score = math.Inf(-1) }},
		{"reason without signal", func(r *decideResponse) { r.Reasons[0].Signal = "" }},
		{"reason empty strings", func(r *decideResponse) { r.Reasons = []engine.Reason{{Outcome: engine.Approve}} }},
		{"value nil", func(r *decideResponse) { r.Reasons = reason(nil, nil) }},
		{"value zero", func(r *decideResponse) { r.Reasons = reason(0.0, 0.0) }},
		{"value empty string", func(r *decideResponse) { r.Reasons = reason("", "") }},
		{"value false", func(r *decideResponse) { r.Reasons = reason(false, true) }},
		{"value html", func(r *decideResponse) { r.Reasons = reason("<script>&amp;</script>", "a>b") }},
		{"value nested", func(r *decideResponse) {
			r.Reasons = reason(map[string]any{"z": []any{1.5, "x", nil, map[string]any{}}, "a": map[string]any{"<": false}}, []any{[]any{}, 2.0})
		}},
		{"value json.Number", func(r *decideResponse) { r.Reasons = reason(json.Number("12.50"), json.Number("1e3")) }},
		{"value 1e21", func(r *decideResponse) { r.Reasons = reason(1e21, 1e20) }},
		{"value negative zero", func(r *decideResponse) { r.Reasons = reason(math.Copysign(0, -1), -1e-7) }},
		{"value ints", func(r *decideResponse) { r.Reasons = reason(int64(-7), 3) }},
		{"value float32", func(r *decideResponse) { r.Reasons = reason(float32(0.1), float32(1e21)) }},
		{"value strings", func(r *decideResponse) { r.Reasons = reason([]string{"a", "<b>"}, []string(nil)) }},
		{"value bools", func(r *decideResponse) {
			r.Reasons = reason(map[string]bool{"b": true, "a": false}, map[string]bool(nil))
		}},
		{"value typed nils", func(r *decideResponse) { r.Reasons = reason(nilMap, nilSlice) }},
		{"value nil pointer", func(r *decideResponse) { r.Reasons = reason(nilPtr, []byte("raw")) }},
		{"value time", func(r *decideResponse) { r.Reasons = reason(time.Unix(0, 1).UTC(), struct{ A int }{1}) }},
		{"value NaN", func(r *decideResponse) { r.Reasons = reason(math.NaN(), nil) }},
		{"threshold NaN", func(r *decideResponse) { r.Reasons = reason(1.0, []any{math.Inf(1)}) }},
		{"value unsupported", func(r *decideResponse) { r.Reasons = reason(make(chan int), nil) }},
		{"strings escaped", func(r *decideResponse) {
			r.DecisionID = "\x00\x01\x1f\b\f\n\r\t\"\\/\x7f"
			r.Action = "<a href=\"x\">&</a>"
			r.StepUp = "\u2028\u2029\u00e9\U0001F600"
			r.Policy = policyRef{Action: "bad\xffutf8\xc3", Version: "\xed\xa0\x80", Hash: "\xf4\x90\x80\x80"}
			r.Reasons[0].Message = "line1\nline2 <b>bold</b> & more"
		}},
		{"time whole seconds", func(r *decideResponse) { r.CreatedAt = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) }},
		{"time trailing zero nanos", func(r *decideResponse) { r.CreatedAt = time.Date(2025, 1, 2, 3, 4, 5, 120000000, time.UTC) }},
		{"time one nano", func(r *decideResponse) { r.CreatedAt = time.Date(2025, 1, 2, 3, 4, 5, 1, time.UTC) }},
		{"time zone", func(r *decideResponse) { r.CreatedAt = time.Date(2025, 7, 1, 23, 59, 59, 999999999, berlin) }},
		{"time negative zone", func(r *decideResponse) {
			r.CreatedAt = time.Date(2025, 7, 1, 0, 0, 0, 5, time.FixedZone("", -(9*3600+30*60+15)))
		}},
		{"time local", func(r *decideResponse) { r.CreatedAt = time.Now() }},
		{"time zero", func(r *decideResponse) { r.CreatedAt = time.Time{} }},
		{"time year 10000", func(r *decideResponse) { r.CreatedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"time year -1", func(r *decideResponse) { r.CreatedAt = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"time zone 24h", func(r *decideResponse) { r.CreatedAt = time.Date(2025, 1, 1, 0, 0, 0, 0, time.FixedZone("", 24*3600)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := baseDecideResponse()
			tt.edit(&r)
			checkDecideJSON(t, &r)
		})
	}
}

// TestDecideResponseJSONOmitempty pins down encoding/json's rule for interface fields:
// omitempty drops only a nil interface, never a non-nil zero value inside one.
func TestDecideResponseJSONOmitempty(t *testing.T) {
	r := baseDecideResponse()
	r.Reasons = []engine.Reason{{Code: "c", Outcome: engine.Block, Value: 0.0, Threshold: false}, {Code: "d", Outcome: engine.Block, Value: ""}}
	b, err := r.appendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"value":0,"threshold":false}`, `"value":""}`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
	if bytes.Count(b, []byte(`"threshold"`)) != 1 {
		t.Errorf("%s: a nil threshold was written", b)
	}
}

// TestDecideResponseJSONFields fails when a field is added to a type appendJSON writes by
// hand: an omitempty field left at its zero value would slip past the byte comparisons.
func TestDecideResponseJSONFields(t *testing.T) {
	for _, c := range []struct {
		v any
		n int
	}{{decideResponse{}, 10}, {policyRef{}, 3}, {degraded{}, 3}, {engine.Reason{}, 7}} {
		if got := reflect.TypeOf(c.v).NumField(); got != c.n {
			t.Errorf("%T has %d fields, appendJSON knows %d: update decide_json.go and this test", c.v, got, c.n)
		}
	}
}

func TestDecideResponseJSONNil(t *testing.T) {
	var r *decideResponse
	b, err := r.appendJSON([]byte("x"))
	if err != nil || string(b) != "xnull" {
		t.Fatalf("got %q, %v", b, err)
	}
}

func FuzzDecideResponseJSON(f *testing.F) {
	f.Add("0190c2d4-7b1e", "payout", "velocity_high", "12 in 1h <&>", "velocity.user", "otp", "v1", "closed",
		72.5, 12.0, `{"a":[1,"x",null,true],"b":{"<":1e21}}`, uint8(3), uint8(2), true, int64(1741964966), int64(535897000), int32(0))
	f.Add("", "", "", "", "", "", "", "", 0.0, math.Copysign(0, -1), `0`, uint8(1), uint8(4), false, int64(0), int64(0), int32(3600))
	f.Add("\u2028\xff", "\x00\n", "\"\\", "é😀", "\t", "\xc3", "\xed\xa0\x80", "review", 1e-7, 1e21, `""`, uint8(0), uint8(1), true, int64(-62135596800), int64(1), int32(-34215))
	f.Add("a", "b", "c", "d", "e", "f", "g", "open", 3.0, 4.0, `[1.0e-9, -0, 123456789012345678901234567890]`, uint8(4), uint8(9), false, int64(253402300800), int64(999999999), int32(86400))
	f.Fuzz(func(t *testing.T, id, action, code, message, signal, stepUp, version, failMode string,
		score, value float64, doc string, outcome, reasonOutcome uint8, hasDegraded bool, sec, nsec int64, offset int32) {
		var decoded, number any
		if json.Unmarshal([]byte(doc), &decoded) != nil {
			decoded = doc
		}
		dec := json.NewDecoder(strings.NewReader(doc))
		dec.UseNumber()
		if dec.Decode(&number) != nil {
			number = nil
		}
		r := &decideResponse{
			DecisionID: id, Action: action, Outcome: engine.Outcome(outcome), Score: score,
			Reasons: []engine.Reason{
				{Code: code, Outcome: engine.Outcome(reasonOutcome), Message: message, Signal: signal, Value: decoded, Threshold: value},
				{Code: message, Outcome: engine.Block, Message: code, Value: number},
			},
			StepUp:             stepUp,
			Policy:             policyRef{Action: action, Version: version, Hash: id + version},
			SignalsUnavailable: []string{signal, code},
			CreatedAt:          time.Unix(sec, nsec).In(time.FixedZone(failMode, int(offset))),
		}
		if hasDegraded {
			r.Degraded = &degraded{FailMode: failMode, Causes: []string{message}, Stored: score > 0}
		} else {
			r.Reasons = r.Reasons[:1]
			r.SignalsUnavailable = nil
		}
		if len(doc)%3 == 0 {
			r.Reasons = nil
		}
		checkDecideJSON(t, r)
	})
}

func BenchmarkDecideResponseJSON(b *testing.B) {
	r := baseDecideResponse()
	b.Run("appendJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.appendJSON(make([]byte, 0, decideResponseSize)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(r); err != nil {
				b.Fatal(err)
			}
		}
	})
}
