package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEvalRefusesWhatTheServerRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.json")
	for _, c := range []struct{ body, want string }{
		{`{"action":"payout","subject":{"id":7}}`, "eval: " + path + ": the server would refuse this input (400): /subject/id must be a string"},
		{`{"action":"payout","subject":{"id":"u1"},"context":{"ip":"10.0.0.300"}}`, "eval: " + path + ": the server would refuse this input (400): /context/ip must be an IPv4 or IPv6 address"},
		{"", "eval: " + path + " is empty"},
		{"  \n", "eval: " + path + " is empty"},
	} {
		os.WriteFile(path, []byte(c.body), 0o644)
		if _, _, err := runArgs(t, nil, "eval", "--input", path); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("eval %q: %v, want %q", c.body, err, c.want)
		}
	}
	// What the server accepts is evaluated as the server would: "de" is DE.
	os.WriteFile(path, []byte(`{"action":"login","subject":{"id":"u1","country":"DE"},"context":{"country":"de"}}`), 0o644)
	out, _, err := runArgs(t, nil, "eval", "--input", path)
	if err != nil || strings.Contains(out, "UNUSUAL_COUNTRY") {
		t.Fatalf("eval with a lower-case country: %v\n%s", err, out)
	}
}
