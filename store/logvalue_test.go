package store_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/verdict-engine/verdict/adapters/providers"
	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/store"
)

// TestPIIBearingTypesLogRedacted logs every PII-bearing record through slog's JSON and
// text handlers and checks that no raw personal value appears.
func TestPIIBearingTypesLogRedacted(t *testing.T) {
	const email, ip, name = "jane.doe@example.com", "198.51.100.23", "Jane Doe"
	in := &engine.Input{Action: "login", Subject: map[string]any{"id": email, "name": name}, Context: map[string]any{"ip": ip}}
	input, _ := json.Marshal(in)
	values := []any{
		in,
		store.DecisionRecord{ID: "d1", Action: "login", SubjectID: email, Input: input, Response: []byte(`{"subject":"` + email + `"}`)},
		store.Verification{ID: "ver_1", UserID: email, ProviderRef: "applicant-of-" + name, Consent: &store.Consent{Locale: name}},
		store.ReviewItem{ID: "ver_1", UserID: email},
		store.OutcomeLabel{DecisionID: "d1", Label: "fraud", Tags: []string{name}},
		store.RawPayload{ID: "whp_1", Ciphertext: []byte(email)},
		providers.Event{ID: "e1", UserID: email, ProviderRef: "ref"},
	}
	for _, h := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
	} {
		var buf bytes.Buffer
		log := slog.New(h(&buf))
		for _, v := range values {
			log.Info("record", "value", v)
		}
		for _, secret := range []string{email, ip, name, "Jane"} {
			if strings.Contains(buf.String(), secret) {
				t.Errorf("a log line carries %q:\n%s", secret, buf.String())
			}
		}
		if !strings.Contains(buf.String(), store.SubjectRef(email)) {
			t.Errorf("logs lack the subject reference:\n%s", buf.String())
		}
	}
}
