package signals_test

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/verdict-engine/verdict/signals"
	"github.com/verdict-engine/verdict/store"
)

func TestNormalizeListValue(t *testing.T) {
	tests := []struct {
		list, value, want string
		ok                bool
	}{
		{"deny_ip", "203.0.113.7", "203.0.113.7", true},
		{"deny_ip", "::ffff:203.0.113.7", "203.0.113.7", true},
		{"deny_ip", "10.1.2.3/8", "", false}, // host bits set: the range or the address?
		{"deny_ip", "10.0.0.0/8", "10.0.0.0/8", true},
		{"deny_ip", "10.30.0.5/32", "10.30.0.5/32", true},
		{"deny_ip", "2001:db8::1/32", "", false},
		{"deny_ip", "::ffff:192.168.1.7/120", "", false},
		{"deny_ip", "2001:db8::/32", "2001:db8::/32", true},
		{"deny_ip", "10.0.0.0/33", "", false},
		{"deny_ip", "example.com", "", false},
		{"deny_ip", "fe80::1%eth0", "", false},
		{"deny_ip", "::ffff:192.168.0.0/120", "192.168.0.0/24", true},
		{"deny_ip", "::ffff:192.168.1.7/128", "192.168.1.7/32", true},
		{"deny_ip", "::ffff:0:0/96", "0.0.0.0/0", true},
		{"deny_ip", "::ffff:0:0/80", "", false},
		{"deny_country", "de", "DE", true},
		{"deny_country", "DEU", "", false},
		{"deny_user", "user-1", "user-1", true},
		{"deny_user", "", "", false},
		{"deny_user", "bad\x00id", "", false},
		{"deny_user", "bad\xffid", "", false},
		{"vip_user", "u", "u", true},
		{"Deny_User", "u", "", false},
		{"deny_email", "a@b", "", false},
		{"disposable_email", "Mailinator.COM.", "mailinator.com", true},
		{"disposable_email", "xn--bcher-kva.example", "xn--bcher-kva.example", true},
		{"disposable_email", "user@mailinator.com", "", false},
		{"disposable_email", "localhost", "", false},
		{"disposable_email", "-bad.com", "", false},
		{"disposable_email", "a..b.com", "", false},
		{"disposable_email", "bücher.example", "", false},
	}
	for _, tc := range tests {
		got, err := signals.NormalizeListValue(tc.list, tc.value)
		if tc.ok != (err == nil) || got != tc.want {
			t.Errorf("NormalizeListValue(%q, %q) = %q, %v", tc.list, tc.value, got, err)
		}
		if err != nil && !errors.Is(err, signals.ErrInvalidList) {
			t.Errorf("error %v does not wrap ErrInvalidList", err)
		}
	}
}

func TestMatcher(t *testing.T) {
	m := signals.NewMatcher([]store.ListEntry{
		{List: "deny_user", Value: "u-bad"},
		{List: "deny_ip", Value: "198.51.100.0/24"},
		{List: "deny_ip", Value: "2001:db8::1"},
		{List: "allow_device", Value: "d-good"},
		{List: "deny_country", Value: "KP"},
		{List: "vip_user", Value: "u-vip"},
		{List: "disposable_email", Value: "mailinator.com"},
		{List: "bogus", Value: "x"},
	})
	tests := []struct {
		name string
		s    signals.Subject
		want map[string]bool
	}{
		{"clean", signals.Subject{UserID: "u1", DeviceID: "d1", IP: netip.MustParseAddr("203.0.113.1"), Country: "DE"}, map[string]bool{}},
		{"user and cidr", signals.Subject{UserID: "u-bad", IP: netip.MustParseAddr("198.51.100.77")}, map[string]bool{"deny_user": true, "deny_ip": true}},
		{"ipv6 exact", signals.Subject{IP: netip.MustParseAddr("2001:db8::1")}, map[string]bool{"deny_ip": true}},
		{"ipv4-mapped ipv6", signals.Subject{IP: netip.MustParseAddr("::ffff:198.51.100.5")}, map[string]bool{"deny_ip": true}},
		{"device and country", signals.Subject{DeviceID: "d-good", Country: "KP"}, map[string]bool{"allow_device": true, "deny_country": true}},
		{"custom list", signals.Subject{UserID: "u-vip"}, map[string]bool{"vip_user": true}},
		{"email domain", signals.Subject{EmailDomain: "mailinator.com"}, map[string]bool{"disposable_email": true}},
		{"email subdomain", signals.Subject{EmailDomain: "mx.mailinator.com"}, map[string]bool{"disposable_email": true}},
		{"email other domain", signals.Subject{EmailDomain: "notmailinator.com"}, map[string]bool{}},
		{"email parent only", signals.Subject{EmailDomain: "com"}, map[string]bool{}},
	}
	for _, tc := range tests {
		got := m.Match(tc.s)
		for _, n := range signals.BuiltinLists {
			if _, ok := got[n]; !ok {
				t.Errorf("%s: builtin list %s missing from %v", tc.name, n, got)
			}
		}
		if _, ok := got["bogus"]; ok {
			t.Errorf("%s: malformed list name indexed", tc.name)
		}
		for k, v := range got {
			if v != tc.want[k] {
				t.Errorf("%s: %s = %v, want %v", tc.name, k, v, tc.want[k])
			}
		}
	}
}

func FuzzNormalizeListValue(f *testing.F) {
	for _, s := range []string{"deny_ip|10.0.0.0/8", "deny_country|de", "deny_user|u", "x|y", "deny_ip|::1%eth0", "deny_ip|::ffff:1.2.3.0/120", "disposable_email|Mailinator.com.", "disposable_email|a@b.c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		list, value, _ := cut(s)
		got, err := signals.NormalizeListValue(list, value)
		if err != nil {
			return
		}
		// What is accepted, the store accepts too: a refusal there would be an error the
		// caller did not cause.
		if err := store.ValidateListEntry(store.ListEntry{List: list, Value: got}); err != nil {
			t.Fatalf("accepted %q → %q, which the store refuses: %v", value, got, err)
		}
		// Normalizing is idempotent and the result matches itself.
		again, err := signals.NormalizeListValue(list, got)
		if err != nil || again != got {
			t.Fatalf("not idempotent: %q → %q → %q, %v", value, got, again, err)
		}
	})
}

func cut(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '|' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// TestEmailDomainInternationalised: an address's internationalised domain is the domain a
// list holds in its xn-- form, however it is written; white space around it is not part of it.
func TestEmailDomainInternationalised(t *testing.T) {
	for in, want := range map[string]string{
		"x@bücher.de":        "xn--bcher-kva.de",
		"x@BÜCHER.DE":        "xn--bcher-kva.de",
		"x@xn--bcher-kva.de": "xn--bcher-kva.de",
		"x@ｍａｉｌｉｎａｔｏｒ.com":   "mailinator.com",
		" X@Mailinator.COM ": "mailinator.com",
		"bücher.de":          "xn--bcher-kva.de",
		"x@mx.bücher.de.":    "mx.xn--bcher-kva.de",
	} {
		if got, ok := signals.EmailDomain(in); !ok || got != want {
			t.Errorf("EmailDomain(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"x@bü cher.de", "x@\u200b.de", "x@localhost", "x@-a.de"} {
		if got, ok := signals.EmailDomain(in); ok {
			t.Errorf("EmailDomain(%q) = %q, want invalid", in, got)
		}
	}
}
