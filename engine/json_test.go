package engine_test

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/verdict-engine/verdict/engine"
)

// sameAsMarshal fails the test unless AppendJSONValue (and, for an *engine.Input,
// AppendJSON) produces json.Marshal's bytes, or both fail.
func sameAsMarshal(t *testing.T, v any) {
	t.Helper()
	want, wantErr := json.Marshal(v)
	prefix := []byte("prefix:")
	got, err := engine.AppendJSONValue(bytes.Clone(prefix), v)
	check := func(what string, got []byte, err error) {
		t.Helper()
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("%s: err = %v, json.Marshal err = %v", what, err, wantErr)
		}
		if err != nil {
			if !bytes.Equal(got, prefix) {
				t.Fatalf("%s: failed with %q, want the buffer unchanged", what, got)
			}
			return
		}
		if got, _ := bytes.CutPrefix(got, prefix); !bytes.Equal(got, want) {
			t.Fatalf("%s:\n got %s\nwant %s", what, got, want)
		}
	}
	check("AppendJSONValue", got, err)
	if in, ok := v.(*engine.Input); ok {
		got, err := in.AppendJSON(bytes.Clone(prefix))
		check("AppendJSON", got, err)
	}
}

func TestAppendJSONStrings(t *testing.T) {
	for _, s := range []string{
		"", "plain", `<script>alert("x&y")</script>`, `back\slash "quoted"`, "\x00\x01\x07\x08\x0b\x0c\x1f\x7f",
		"tab\tnl\ncr\rbs\bff\f", "line\u2028para\u2029end", "bad \xff utf8 \xe2\x80", "\xed\xa0\x80 surrogate",
		"emoji 😀 and ünïcödé 中文", "\u00a0\ufeff\ufffd", strings.Repeat("ab<", 100),
	} {
		sameAsMarshal(t, s)
		sameAsMarshal(t, map[string]any{s: s})
		sameAsMarshal(t, []string{s})
		sameAsMarshal(t, map[string]bool{s: true})
	}
}

func TestAppendJSONNumbers(t *testing.T) {
	for _, f := range []float64{
		0, math.Copysign(0, -1), 1, -1, 0.1, 1e-6, 1e-7, 9.99999e-7, 1e20, 1e21, 123456789, 1.5e300,
		-1.5e-10, 5e-324, math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64, 1 << 53, 0.1 + 0.2,
	} {
		sameAsMarshal(t, f)
		sameAsMarshal(t, float32(f))
		sameAsMarshal(t, []any{f, -f})
	}
	for _, v := range []any{
		0, -1, math.MaxInt64, int64(math.MinInt64), float32(1e-7), float32(16777217), float32(1e21), float32(3.4e38),
		json.Number("12.5e-3"), json.Number(""), json.Number("-0"), json.Number("01"), json.Number("abc"), json.Number("1e"),
	} {
		sameAsMarshal(t, v)
		sameAsMarshal(t, map[string]any{"n": v})
	}
}

// TestAppendJSONUnsupported: NaN and infinities are an error wherever they sit, as with
// json.Marshal, and never a panic.
func TestAppendJSONUnsupported(t *testing.T) {
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		for _, v := range []any{f, float32(f), map[string]any{"a": 1.0, "b": []any{map[string]any{"c": f}}}} {
			sameAsMarshal(t, v)
			if _, err := engine.AppendJSONValue(nil, v); err == nil {
				t.Fatalf("%v: no error", v)
			}
		}
		in := payoutInput()
		in.Behavior["bot_score"] = f
		sameAsMarshal(t, in)
		in = payoutInput()
		in.Signals.Device.AgeHours = f
		sameAsMarshal(t, in)
	}
}

func TestAppendJSONValues(t *testing.T) {
	deep := any("leaf")
	for range 1200 {
		deep = []any{map[string]any{"d": deep}}
	}
	for _, v := range []any{
		nil, true, false,
		map[string]any(nil), map[string]any{}, []any(nil), []any{}, map[string]bool(nil), map[string]bool{}, []string(nil), []string{},
		map[string]any{"b": 1.0, "a": []any{nil, true, "x", 2.5, map[string]any{}, []any{}}, "": map[string]any{"z": nil, "Z": nil, "é": 1.0, "e": 2.0}},
		map[string]any{"m": map[string]any(nil), "s": []any(nil), "typed": []int{1, 2}, "bytes": []byte("hi"), "struct": struct{ A int }{1}},
		map[string]any{"outcome": engine.Block, "ptr": new(int)},
		func() map[string]any { // more keys than the stack buffer holds
			m := map[string]any{}
			for _, k := range strings.Fields("q w e r t y u i o p a s d f g h j k l z x c v b n m Q W E R") {
				m[k] = k
			}
			return m
		}(),
		deep,
		map[string]any{"f": func() {}},
	} {
		sameAsMarshal(t, v)
	}
}

func TestAppendJSONInput(t *testing.T) {
	empty := payoutInput()
	empty.Subject, empty.Device, empty.Context, empty.Behavior = map[string]any{}, map[string]any{}, map[string]any{}, map[string]any{}
	empty.Signals.Lists, empty.Signals.Unavailable, empty.Signals.Verification.ReasonCodes = map[string]bool{}, []string{}, []string{}
	full := payoutInput()
	full.Action = "payout<&>"
	full.Subject["nested"] = map[string]any{"list": []any{1.0, "two", map[string]any{"three": []any{}}}, "email": "a@b.c"}
	full.Signals.Verification.ReasonCodes = []string{"DOC_EXPIRED", "FACE_MISMATCH"}
	full.Signals.Verification.Score = 1e-9
	full.Signals.Unavailable = []string{"velocity", "lists"}
	full.Signals.Lists["deny_user"] = true
	full.Signals.Device = engine.DeviceReputation{Known: true, AgeHours: 0.5, UsersSeen: 3, Flagged: true}
	full.Signals.Velocity.User.Count24h = math.MaxInt64
	var nilInput *engine.Input
	for _, in := range []*engine.Input{payoutInput(), {}, empty, full, nilInput} {
		sameAsMarshal(t, in)
	}
	if got, err := nilInput.AppendJSON(nil); err != nil || string(got) != "null" {
		t.Fatalf("nil input: %q, %v", got, err)
	}
}

// FuzzAppendJSONMatchesEncodingJSON: for any JSON document, decoded as encoding/json
// decodes a request body, AppendJSONValue and Input.AppendJSON produce json.Marshal's
// bytes exactly.
func FuzzAppendJSONMatchesEncodingJSON(f *testing.F) {
	if doc, err := json.Marshal(payoutInput()); err == nil {
		f.Add(doc)
	}
	for _, doc := range []string{
		`{"a":1,"b":[true,false,null,"x"],"c":{"d":1e-7,"e":1e21,"f":-0.0}}`,
		`{"<&>":"\u2028\u2029\u0000\ud800","\u00e9":"\ufffd","e":"😀"}`,
		`[1.5e300,0.000001,123456789012345678901234567890,-1e-400,{"":{}}]`,
		`"\b\f\n\r\t\u001f\u007f"`,
		`{"z":{},"Z":[],"a":{"b":{"c":{"d":[[[[]]]]}}}}`,
		`null`, `12`, `{}`,
	} {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		var v any
		if json.Unmarshal(doc, &v) != nil {
			t.Skip()
		}
		sameAsMarshal(t, v)
		if m, ok := v.(map[string]any); ok {
			in := payoutInput()
			in.Subject, in.Context = m, m
			in.Action, _ = m["action"].(string)
			sameAsMarshal(t, in)
		}
		// The same document with numbers kept as json.Number.
		d := json.NewDecoder(bytes.NewReader(doc))
		d.UseNumber()
		if d.Decode(&v) == nil {
			sameAsMarshal(t, v)
		}
	})
}

func BenchmarkInputAppendJSON(b *testing.B) {
	in := payoutInput()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := in.AppendJSON(make([]byte, 0, 2048)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkInputJSONMarshal(b *testing.B) {
	in := payoutInput()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(in); err != nil {
			b.Fatal(err)
		}
	}
}
