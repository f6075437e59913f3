package pii_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/engine/pii"
)

var key = bytes.Repeat([]byte{7}, 32)

func pseudo(t testing.TB) *pii.Pseudonymizer {
	p, err := pii.NewPseudonymizer(key)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func decode(t testing.TB, s string) *engine.Input {
	t.Helper()
	var in engine.Input
	if err := json.Unmarshal([]byte(s), &in); err != nil {
		t.Fatal(err)
	}
	return &in
}

const posted = `{"action":"payout",
	"subject":{"id":"u-1","Email":"jane.doe@example.com","name":"Jane Doe","country":"DE","account_age_days":3,
		"address":{"street":"1 Main St","city":"Berlin"}},
	"device":{"id":"d-1","user_agent":"Mozilla/5.0 canary","emulator":false,"ip":["198.51.100.77"]},
	"context":{"ip":"203.0.113.9","amount":1800,"beneficiaries":[{"iban":"DE89370400440532013000","new":true},{"new":false}]},
	"behavior":{"bot_score":0.2,"session":{"ip":{"v4":"198.51.100.78"},"IP":null}},
	"signals":{"verification":{"status":"approved"},"lists":{"deny_ip":false},"unavailable":[]}}`

func TestSplitRemovesPersonalDataAndKeepsTheRest(t *testing.T) {
	in := decode(t, posted)
	before, _ := json.Marshal(in)
	snap, removed := pii.Split(in, pseudo(t))

	after, _ := json.Marshal(in)
	if !bytes.Equal(before, after) {
		t.Fatal("Split modified its input")
	}
	out, _ := json.Marshal(&snap)
	for _, v := range []string{"jane.doe@example.com", "Jane Doe", "1 Main St", "Mozilla/5.0 canary", "203.0.113.9", "DE89370400440532013000", "198.51.100.77", "198.51.100.78"} {
		if bytes.Contains(out, []byte(v)) {
			t.Errorf("snapshot still holds %q: %s", v, out)
		}
	}
	for _, v := range []string{`"id":"u-1"`, `"id":"d-1"`, `"country":"DE"`, `"amount":1800`, `"bot_score":0.2`, `"new":true`, `"account_age_days":3`, `"status":"approved"`, `"IP":null`} {
		if !bytes.Contains(out, []byte(v)) {
			t.Errorf("snapshot lost %s: %s", v, out)
		}
	}
	ip, _ := snap.Context["ip"].(string)
	a, err := netip.ParseAddr(ip)
	if err != nil || !netip.MustParsePrefix("2001:db8::/32").Contains(a) {
		t.Errorf("ip stand-in %q is not a documentation-range address", ip)
	}
	if len(removed) != 8 {
		t.Errorf("removed %d fields, want 8: %+v", len(removed), removed)
	}
}

// TestSplitDeepDocument: a field deep in a document is removed with its whole path, and
// Merge puts it back; siblings on the way keep their own paths.
func TestSplitDeepDocument(t *testing.T) {
	const depth = 300
	doc := `"x"`
	for i := range depth {
		if i == depth/2 {
			doc = `{"a":` + doc + `,"email":"deep@example.com","list":[{"phone":"+49 30 1234"}]}`
			continue
		}
		doc = `{"a":` + doc + `}`
	}
	in := decode(t, `{"action":"login","subject":{"id":"u"},"behavior":`+doc+`}`)
	snap, removed := pii.Split(in, pseudo(t))
	out, _ := json.Marshal(&snap)
	if bytes.Contains(out, []byte("deep@example.com")) || bytes.Contains(out, []byte("+49 30 1234")) {
		t.Fatalf("snapshot holds the deep fields")
	}
	slices.SortFunc(removed, func(a, b pii.Field) int { return len(a.Path) - len(b.Path) }) // map order varies
	if len(removed) != 2 || len(removed[0].Path) != depth/2+1 || len(removed[1].Path) != depth/2+3 {
		t.Fatalf("removed: %d fields, paths %v", len(removed), removed)
	}
	var back map[string]any
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	pii.Merge(back, removed)
	want, _ := json.Marshal(in)
	var wantDoc map[string]any
	_ = json.Unmarshal(want, &wantDoc)
	if !reflect.DeepEqual(back, wantDoc) {
		t.Fatalf("merge did not restore the deep document")
	}
}

func TestMergeRestoresTheInput(t *testing.T) {
	in := decode(t, posted)
	snap, removed := pii.Split(in, pseudo(t))
	// Through JSON, as stored: the snapshot and the sealed fields are stored apart.
	sj, _ := json.Marshal(&snap)
	rj, _ := json.Marshal(removed)
	var doc map[string]any
	var fields []pii.Field
	if err := json.Unmarshal(sj, &doc); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(rj, &fields); err != nil {
		t.Fatal(err)
	}
	pii.Merge(doc, fields)
	var want map[string]any
	orig, _ := json.Marshal(in)
	_ = json.Unmarshal(orig, &want)
	if !reflect.DeepEqual(doc, want) {
		got, _ := json.Marshal(doc)
		t.Fatalf("merged:\n%s\nwant:\n%s", got, orig)
	}
}

func TestPseudonymStableKeyedAndCanonical(t *testing.T) {
	p := pseudo(t)
	if p.IP("10.0.0.1") != p.IP("::ffff:10.0.0.1") || p.IP("10.0.0.1") != p.IP("10.0.0.1") {
		t.Fatal("same address, different stand-ins")
	}
	if p.IP("10.0.0.1") == p.IP("10.0.0.2") {
		t.Fatal("different addresses, same stand-in")
	}
	other, _ := pii.NewPseudonymizer(bytes.Repeat([]byte{8}, 32))
	if other.IP("10.0.0.1") == p.IP("10.0.0.1") {
		t.Fatal("stand-in does not depend on the key")
	}
	if _, err := pii.NewPseudonymizer(key[:16]); err == nil {
		t.Fatal("short key accepted")
	}
}

// A digest is stable under one key, differs with the key, the text and the label, and is
// not the plain SHA-256 anyone could compute from a guess.
func TestDigestKeyedAndLabelled(t *testing.T) {
	p := pseudo(t)
	d := p.Digest("review note", []byte("+44 20 7946 0958"))
	if !regexp.MustCompile(`^hmac-sha256:[0-9a-f]{64}$`).MatchString(d) || d != p.Digest("review note", []byte("+44 20 7946 0958")) {
		t.Fatalf("digest %q: not stable or not hmac-sha256:<hex>", d)
	}
	plain := sha256.Sum256([]byte("+44 20 7946 0958"))
	other, _ := pii.NewPseudonymizer(bytes.Repeat([]byte{8}, 32))
	for what, x := range map[string]string{
		"plain SHA-256":   "hmac-sha256:" + hex.EncodeToString(plain[:]),
		"another key":     other.Digest("review note", []byte("+44 20 7946 0958")),
		"another text":    p.Digest("review note", []byte("+44 20 7946 0959")),
		"another label":   p.Digest("review", []byte(" note\x00+44 20 7946 0958")),
		"no label at all": p.Digest("", []byte("review note\x00+44 20 7946 0958")),
	} {
		if x == d {
			t.Errorf("digest equals the one with %s", what)
		}
	}
}

func TestSplitWithoutPersonalDataSharesTheInput(t *testing.T) {
	in := decode(t, `{"action":"login","subject":{"id":"u"},"context":{"amount":1}}`)
	snap, removed := pii.Split(in, nil)
	if removed != nil {
		t.Fatalf("removed %v", removed)
	}
	if reflect.ValueOf(snap.Subject).Pointer() != reflect.ValueOf(in.Subject).Pointer() {
		t.Fatal("an unchanged section was copied")
	}
	// Without a pseudonymizer an IP is dropped.
	in = decode(t, `{"action":"login","subject":{"id":"u"},"context":{"ip":"10.0.0.1"}}`)
	snap, removed = pii.Split(in, nil)
	if _, ok := snap.Context["ip"]; ok || len(removed) != 1 {
		t.Fatalf("snapshot %v removed %v", snap.Context, removed)
	}
}

// FuzzSplitMerge: for any posted input, the snapshot holds none of the removed string
// values under a personal-data key, and merging gives back the input exactly.
func FuzzSplitMerge(f *testing.F) {
	f.Add(posted)
	f.Add(`{"subject":{"id":"x","EMAIL":["a","b"],"nested":[[{"phone":"1"}]]},"context":{"ip":7}}`)
	f.Add(`{"behavior":{"ip":{"ip":"1.2.3.4"}},"device":null}`)
	p := pseudo(f)
	f.Fuzz(func(t *testing.T, s string) {
		var in engine.Input
		if json.Unmarshal([]byte(s), &in) != nil {
			return
		}
		orig, err := json.Marshal(&in)
		if err != nil {
			return
		}
		snap, removed := pii.Split(&in, p)
		again, _ := json.Marshal(&in)
		if !bytes.Equal(orig, again) {
			t.Fatal("Split modified its input")
		}
		sj, _ := json.Marshal(&snap)
		var doc map[string]any
		if err := json.Unmarshal(sj, &doc); err != nil {
			t.Fatal(err)
		}
		checkNoKeys(t, doc)
		rj, _ := json.Marshal(removed)
		var fields []pii.Field
		if err := json.Unmarshal(rj, &fields); err != nil {
			t.Fatal(err)
		}
		pii.Merge(doc, fields)
		var want map[string]any
		_ = json.Unmarshal(orig, &want)
		if !reflect.DeepEqual(doc, want) {
			got, _ := json.Marshal(doc)
			t.Fatalf("merged:\n%s\nwant:\n%s", got, orig)
		}
	})
}

func checkNoKeys(t *testing.T, v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if pii.IsKey(k) {
				t.Fatalf("snapshot keeps personal-data key %q", k)
			}
			if s, ok := e.(string); ok && strings.EqualFold(k, "ip") && !strings.HasPrefix(s, "2001:db8:") {
				t.Fatalf("snapshot keeps ip %q", s)
			}
			checkNoKeys(t, e)
		}
	case []any:
		for _, e := range x {
			checkNoKeys(t, e)
		}
	}
}
