package signals

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/net/idna"

	"github.com/verdict-engine/verdict/store"
)

// List fields: the part of a request a list is matched against. A list's name ends with
// its field: deny_user, allow_ip, watch_device, deny_country, vip_user, disposable_email, ...
// An email list holds domains, matched against the domain of subject.email and its parent
// domains (a list holding mailinator.com matches a@mx.mailinator.com).
const (
	FieldUser    = "user"
	FieldDevice  = "device"
	FieldIP      = "ip"
	FieldCountry = "country"
	FieldEmail   = "email"
)

// BuiltinLists are always present in signals.lists (false when empty), so policies can
// rely on their keys.
var BuiltinLists = []string{
	"allow_device", "allow_ip", "allow_user",
	"deny_country", "deny_device", "deny_ip", "deny_user",
	"watch_device", "watch_ip", "watch_user",
}

var listName = regexp.MustCompile(`^[a-z][a-z0-9]{0,30}_(user|device|ip|country|email)$`)

// ErrInvalidList is returned for a malformed list name or value.
var ErrInvalidList = errors.New("invalid list entry")

// HostBitsError refuses a CIDR prefix written with host bits set (10.30.0.5/16): it is
// ambiguous between the range (Prefix, 10.30.0.0/16) and the one address (Addr). It
// wraps ErrInvalidList.
type HostBitsError struct {
	Value  string       // as written
	Prefix netip.Prefix // the range it would cover, masked
	Addr   netip.Addr   // the address it names
}

func (e *HostBitsError) Error() string {
	return fmt.Sprintf("%s has host bits set: for the /%d range write %s, for the one address %s",
		e.Value, e.Prefix.Bits(), e.Prefix, e.Addr)
}

func (e *HostBitsError) Unwrap() error { return ErrInvalidList }

// ListField returns the field a list matches on, or an error wrapping ErrInvalidList
// when the name is not <prefix>_<user|device|ip|country|email>.
func ListField(list string) (string, error) {
	m := listName.FindStringSubmatch(list)
	if m == nil {
		return "", fmt.Errorf("%w: list name %q must be <name>_<user|device|ip|country|email>, lowercase", ErrInvalidList, list)
	}
	return m[1], nil
}

// NormalizeListValue validates value for list and returns its canonical form: an IP or
// CIDR prefix in canonical notation for ip lists, an upper-case ISO 3166 alpha-2 code for
// country lists, a lower-case domain name for email lists, and the id itself (1–256
// printable characters) for user and device lists. Errors wrap ErrInvalidList; a prefix
// with host bits set (10.30.0.5/16) is a *HostBitsError.
func NormalizeListValue(list, value string) (string, error) {
	field, err := ListField(list)
	if err != nil {
		return "", err
	}
	switch field {
	case FieldIP:
		if strings.Contains(value, "/") {
			p, err := netip.ParsePrefix(value)
			if err != nil {
				return "", fmt.Errorf("%w: %q is not an IP address or CIDR prefix", ErrInvalidList, value)
			}
			// Requests' addresses are matched unmapped (::ffff:192.0.2.1 is 192.0.2.1), so
			// an IPv4-mapped prefix is stored as the IPv4 prefix it covers; one wider than
			// the mapped range (::ffff:0:0/96) could never match an IPv4 request.
			if a := p.Addr(); a.Is4In6() {
				if p.Bits() < 96 {
					return "", fmt.Errorf("%w: %q reaches beyond the IPv4-mapped range; write IPv4 prefixes as such (10.0.0.0/8)", ErrInvalidList, value)
				}
				p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
			}
			// 10.30.0.5/16 is refused rather than stored as 10.30.0.0/16: whoever wrote
			// it may have meant the one address, and a deny list would then block 65,536.
			if m := p.Masked(); m != p {
				return "", &HostBitsError{Value: value, Prefix: m, Addr: p.Addr()}
			}
			return p.String(), nil
		}
		a, err := netip.ParseAddr(value)
		// A zoned address (fe80::1%eth0) never matches: /v1/decide refuses zones.
		if err != nil || a.Zone() != "" {
			return "", fmt.Errorf("%w: %q is not an IP address or CIDR prefix", ErrInvalidList, value)
		}
		return a.Unmap().String(), nil
	case FieldCountry:
		if len(value) != 2 || !isAlpha(value) {
			return "", fmt.Errorf("%w: %q is not an ISO 3166 alpha-2 country code", ErrInvalidList, value)
		}
		return strings.ToUpper(value), nil
	case FieldEmail:
		// Entries are written as the list will hold them: ASCII, internationalised names
		// in their xn-- form (EmailDomain converts a request's address to it).
		d, ok := EmailDomain(value)
		if !ok || strings.Contains(value, "@") || value != strings.TrimSpace(value) || !isASCII(value) {
			return "", fmt.Errorf("%w: %q is not a domain name (an email list holds domains, such as mailinator.com; internationalised names in their xn-- form)", ErrInvalidList, value)
		}
		return d, nil
	default:
		if value == "" || len(value) > 256 || !isPrintable(value) {
			return "", fmt.Errorf("%w: %s id must be printable text of 1 to 256 bytes (UTF-8)", ErrInvalidList, field)
		}
		return value, nil
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func isAlpha(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

func isPrintable(s string) bool {
	if !utf8.ValidString(s) { // ranging would read each bad byte as U+FFFD and pass it
		return false
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// EmailDomain returns the lower-case domain of an email address (the part after its last
// @), or of a bare domain name, and whether it is a valid domain name: labels of 1 to 63
// letters, digits and hyphens, not starting or ending with a hyphen, at least two of them,
// 253 bytes at most. A trailing dot and surrounding white space are dropped. An
// internationalised name is returned in its ASCII (xn--) form, the form lists hold, so
// "bücher.de" and "xn--bcher-kva.de" are one domain.
func EmailDomain(s string) (string, bool) {
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		s = s[i+1:]
	}
	s = strings.TrimSpace(s)
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			a, err := idna.Lookup.ToASCII(s)
			if err != nil {
				return "", false
			}
			s = a
			break
		}
	}
	s = strings.ToLower(strings.TrimSuffix(s, "."))
	if len(s) == 0 || len(s) > 253 || !strings.Contains(s, ".") {
		return "", false
	}
	for label := range strings.SplitSeq(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "", false
			}
		}
	}
	return s, true
}

// matchDomain reports whether list n holds domain or one of its parent domains.
func (m *Matcher) matchDomain(n, domain string) bool {
	set := m.exact[n]
	for domain != "" && len(set) > 0 {
		if _, hit := set[domain]; hit {
			return true
		}
		i := strings.IndexByte(domain, '.')
		if i < 0 {
			break
		}
		domain = domain[i+1:]
	}
	return false
}

// Subject is what lists are matched against for one request.
type Subject struct {
	UserID   string
	DeviceID string
	IP       netip.Addr // zero when absent
	Country  string     // upper-case alpha-2, empty when absent
	// EmailDomain is the lower-case domain of subject.email (EmailDomain), empty when
	// absent or not an address.
	EmailDomain string
}

// Matcher is an immutable, in-memory index of every list entry.
type Matcher struct {
	names    []string                       // every list name, builtins included
	exact    map[string]map[string]struct{} // list → values (ids, IPs, countries)
	prefixes map[string][]netip.Prefix      // ip list → CIDR prefixes
	fields   map[string]string              // list → field
}

// NewMatcher indexes entries. Entries with malformed names or values are skipped.
func NewMatcher(entries []store.ListEntry) *Matcher {
	m := &Matcher{exact: map[string]map[string]struct{}{}, prefixes: map[string][]netip.Prefix{}, fields: map[string]string{}}
	for _, n := range BuiltinLists {
		f, _ := ListField(n)
		m.fields[n] = f
	}
	for _, e := range entries {
		f, err := ListField(e.List)
		if err != nil {
			continue
		}
		m.fields[e.List] = f
		if f == FieldIP && strings.Contains(e.Value, "/") {
			if p, err := netip.ParsePrefix(e.Value); err == nil {
				m.prefixes[e.List] = append(m.prefixes[e.List], p.Masked())
			}
			continue
		}
		set := m.exact[e.List]
		if set == nil {
			set = map[string]struct{}{}
			m.exact[e.List] = set
		}
		set[e.Value] = struct{}{}
	}
	for n := range m.fields {
		m.names = append(m.names, n)
	}
	return m
}

// Match returns, for every known list, whether s is on it.
func (m *Matcher) Match(s Subject) map[string]bool {
	out := make(map[string]bool, len(m.names))
	var ip string
	if s.IP.IsValid() {
		ip = s.IP.Unmap().String()
	}
	for _, n := range m.names {
		var v string
		switch m.fields[n] {
		case FieldUser:
			v = s.UserID
		case FieldDevice:
			v = s.DeviceID
		case FieldIP:
			v = ip
		case FieldCountry:
			v = s.Country
		case FieldEmail:
			out[n] = m.matchDomain(n, s.EmailDomain)
			continue
		}
		hit := false
		if v != "" {
			_, hit = m.exact[n][v]
			if !hit && s.IP.IsValid() && m.fields[n] == FieldIP {
				for _, p := range m.prefixes[n] {
					if p.Contains(s.IP.Unmap()) {
						hit = true
						break
					}
				}
			}
		}
		out[n] = hit
	}
	return out
}

// Lists keeps a Matcher in step with a store's lists: Refresh rebuilds it when the
// store's lists version changed, Run polls for changes made by other replicas.
type Lists struct {
	src     store.Lists
	current atomic.Pointer[Matcher]
	version atomic.Int64
	mu      sync.Mutex // serializes refreshes
}

// NewLists returns Lists over src, loading the current entries.
func NewLists(ctx context.Context, src store.Lists) (*Lists, error) {
	l := &Lists{src: src}
	l.version.Store(-1)
	if err := l.Refresh(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

// Matcher returns the current matcher.
func (l *Lists) Matcher() *Matcher { return l.current.Load() }

// Refresh reloads the entries if the store's lists version moved.
func (l *Lists) Refresh(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	v, err := l.src.ListsVersion(ctx)
	if err != nil {
		return fmt.Errorf("refresh lists: %w", err)
	}
	if v == l.version.Load() && l.current.Load() != nil {
		return nil
	}
	entries, err := l.src.AllListEntries(ctx)
	if err != nil {
		return fmt.Errorf("refresh lists: %w", err)
	}
	l.current.Store(NewMatcher(entries))
	l.version.Store(v)
	return nil
}

// Run refreshes every interval until ctx ends, calling onErr for failed refreshes.
func (l *Lists) Run(ctx context.Context, interval time.Duration, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := l.Refresh(ctx); err != nil && onErr != nil && ctx.Err() == nil {
				onErr(err)
			}
		}
	}
}
