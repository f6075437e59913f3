package policytest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/engine/pii"
)

// scrubbed are the caller-posted parts of the input; signals are derived numbers and
// booleans and stay as they are.
var scrubbed = []string{"subject", "device", "context", "behavior"}

// Scrub returns the policy input document input with personal data removed, so that it
// can be kept as a golden case:
//   - subject.id and device.id become stable pseudonyms, "subject-" (or "device-") and the
//     first 12 hex digits of the SHA-256 of the id;
//   - the personal-data keys of engine/pii (email, phone, name, address, document_number,
//     ...) are removed wherever they appear in subject, device, context and behavior;
//   - context.ip becomes an address of the documentation ranges (192.0.2.0/24, or
//     2001:db8::/32 for IPv6) derived from its hash;
//   - everything else, signals included, is kept as it was (numbers exactly).
//
// The same input always gives the same output. Scrub returns an error when input is not
// a JSON object.
func Scrub(input []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(input))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("scrub: %w", err)
	}
	if doc == nil {
		return nil, errors.New("scrub: input is not a JSON object")
	}
	if dec.More() {
		return nil, errors.New("scrub: trailing data after the input document")
	}
	for _, k := range scrubbed {
		doc[k] = dropPII(doc[k])
	}
	if s, ok := doc["subject"].(map[string]any); ok {
		if id, ok := s["id"]; ok && id != nil {
			s["id"] = pseudonym("subject", id)
		}
	}
	if d, ok := doc["device"].(map[string]any); ok {
		if id, ok := d["id"]; ok && id != nil {
			d["id"] = pseudonym("device", id)
		}
	}
	if c, ok := doc["context"].(map[string]any); ok {
		if ip, ok := c["ip"]; ok && ip != nil {
			c["ip"] = documentationIP(ip)
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("scrub: %w", err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// dropPII removes the PII keys from v, recursively through objects and arrays.
func dropPII(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if pii.IsKey(k) {
				delete(x, k)
				continue
			}
			x[k] = dropPII(e)
		}
	case []any:
		for i, e := range x {
			x[i] = dropPII(e)
		}
	}
	return v
}

// idText is the text an id is hashed from: a string as it is, anything else as JSON.
func idText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func pseudonym(prefix string, id any) string {
	sum := sha256.Sum256([]byte(idText(id)))
	return prefix + "-" + hex.EncodeToString(sum[:])[:12]
}

// documentationIP maps an address to one of the documentation ranges (RFC 5737, RFC 3849),
// keeping its family so that policies checking the family still see the same.
func documentationIP(ip any) string {
	text := idText(ip)
	sum := sha256.Sum256([]byte(text))
	if a, err := netip.ParseAddr(text); err == nil && a.Is6() && !a.Is4In6() {
		return fmt.Sprintf("2001:db8::%x:%x", uint16(sum[0])<<8|uint16(sum[1]), uint16(sum[2])<<8|uint16(sum[3]))
	}
	return fmt.Sprintf("192.0.2.%d", 1+int(sum[0])%254)
}

// StoredDecision is what ExportCase needs of a stored decision.
type StoredDecision struct {
	ID          string
	Action      string
	Input       json.RawMessage // the exact policy input document
	Outcome     string
	ReasonCodes []string
	StepUp      string // the step-up method answered, when Outcome is step_up
	// Note is appended to the case's description (policy version, date, labels, ...).
	Note string
}

var safeID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// ExportCase turns a stored decision into a golden case named <action>-<id>, its input
// scrubbed of personal data (see Scrub) and its decision as the want. It returns an error
// for an invalid action name or decision id (they name the case's file) or an input Scrub
// refuses.
func ExportCase(d StoredDecision) (Case, error) {
	if !engine.ValidAction(d.Action) {
		return Case{}, fmt.Errorf("export decision %q: invalid action %q", d.ID, d.Action)
	}
	if !safeID.MatchString(d.ID) || strings.Contains(d.ID, "..") {
		return Case{}, fmt.Errorf("export decision %q: id cannot name a file", d.ID)
	}
	in, err := Scrub(d.Input)
	if err != nil {
		return Case{}, fmt.Errorf("export decision %s: %w", d.ID, err)
	}
	codes := d.ReasonCodes
	if codes == nil {
		codes = []string{}
	}
	c := Case{
		Name:        d.Action + "-" + d.ID,
		Description: "Exported from stored decision " + d.ID,
		Input:       in,
		Want:        Want{Outcome: d.Outcome, ReasonCodes: codes},
	}
	if d.Note != "" {
		c.Description += " (" + d.Note + ")"
	}
	if d.Outcome == "step_up" {
		c.Want.StepUp = d.StepUp
	}
	return c, nil
}

// WriteCase writes c to dir/<c.Name>.json, indented, and returns the file's path.
func WriteCase(dir string, c Case) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(c); err != nil {
		return "", fmt.Errorf("write golden case %s: %w", c.Name, err)
	}
	p := filepath.Join(dir, c.Name+".json")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("write golden case: %w", err)
	}
	return p, nil
}
