package store

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// referenceCanonical is the definition CanonicalJSON implements: decode into an `any`,
// encode back without HTML escaping.
func referenceCanonical(raw []byte) ([]byte, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

var canonicalSeeds = []string{
	`{"b":1,"a":[1.5e3,"x"]}`, `[]`, `{}`, ` [ ] `, `"\u00e9"`, `{"a":{"b":null}}`, `1e400`, `1e-400`, `-0`, `-0.0`,
	`0.000001`, `0.0000001`, `1e21`, `1e20`, `123456789012345`, `1234567890123456`, `12345678901234567890`,
	`"\ud83d\ude00"`, `"\ud83d"`, `"\ud83dx"`, `"\ude00\ud83d"`, `"\ud83d\u0041"`, "\"\xff\xfe\"", "\"\xed\xa0\x80\"",
	`"\u2028\u2029"`, "\"\u2028\"", `"<>&"`, `"\b\f\n\r\t\u0001\u001f\u007f"`, "\"\x7f\"", `"\/"`,
	`{"a":1,"a":2}`, `{"b":1,"a":2,"b":3}`, `{"é":1,"e":2,"z":3,"Z":4}`, `{"a\u0000":1,"a":2}`,
	`true`, `false`, `null`, `tru`, `01`, `1.`, `.5`, `+1`, `-`, `1e`, `1e+`, `[1,]`, `{"a":1,}`, `{"a" 1}`,
	`{"a":1} x`, `"unterminated`, `"bad \x escape"`, `"\u12"`, "\"raw\ncontrol\"", ``, `  `,
	`{"z":{"y":[3,2,{"c":1,"b":2}]},"a":"x"}`, `[1e2, 1E2, 1e+2, 100.0, 1.0e2]`,
}

func TestCanonicalJSONMatchesEncodingJSON(t *testing.T) {
	for _, in := range canonicalSeeds {
		checkCanonicalAgainstReference(t, []byte(in))
	}
	deep := strings.Repeat("[", maxCanonicalDepth+1) + strings.Repeat("]", maxCanonicalDepth+1)
	checkCanonicalAgainstReference(t, []byte(deep))
	ok := strings.Repeat("[", 500) + strings.Repeat("]", 500)
	checkCanonicalAgainstReference(t, []byte(ok))
}

func checkCanonicalAgainstReference(t *testing.T, in []byte) {
	t.Helper()
	want, wantErr := referenceCanonical(in)
	got, err := CanonicalJSON(in)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("CanonicalJSON(%q) error = %v, encoding/json error = %v", in, err, wantErr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("CanonicalJSON(%q) = %q, encoding/json gives %q", in, got, want)
	}
}

func FuzzCanonicalJSONMatchesEncodingJSON(f *testing.F) {
	for _, s := range canonicalSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkCanonicalAgainstReference(t, in)
		if c, err := CanonicalJSON(in); err == nil {
			c2, err := CanonicalJSON(c)
			if err != nil || !bytes.Equal(c, c2) {
				t.Fatalf("not idempotent: %q -> %q -> %q (%v)", in, c, c2, err)
			}
		}
	})
}
