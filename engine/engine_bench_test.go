package engine_test

import (
	"context"
	"testing"

	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/policies"
)

// payoutInput is a typical payout: established account, known device, bank transfer.
func payoutInput() *engine.Input {
	return &engine.Input{
		Action:   "payout",
		Subject:  map[string]any{"id": "user-1", "account_age_days": 400.0, "country": "DE", "email_verified": true},
		Device:   map[string]any{"id": "dev-1", "platform": "ios"},
		Context:  map[string]any{"ip": "10.1.2.3", "country": "DE", "amount": 1800.0, "currency": "EUR", "payout_method": "bank", "new_beneficiary": true},
		Behavior: map[string]any{"bot_score": 0.1, "session_age_seconds": 300.0},
		Signals: engine.Signals{
			Verification: engine.Verification{Status: "approved", Provider: "sandbox", Score: 0.93, ReasonCodes: []string{}, AgeDays: 40},
			Velocity:     engine.Velocity{User: engine.Window{Count1m: 1, Count1h: 2, Count24h: 4, DistinctDevices24h: 1}, Device: engine.Window{Count1m: 1, Count1h: 2, Count24h: 4, DistinctUsers24h: 1}, IP: engine.Window{Count1m: 1, Count1h: 2, Count24h: 4, DistinctUsers24h: 1}},
			Device:       engine.DeviceReputation{Known: true, AgeHours: 900, UsersSeen: 1},
			Lists:        map[string]bool{"deny_user": false, "deny_device": false, "deny_ip": false, "deny_country": false, "allow_user": false, "allow_device": false, "allow_ip": false, "watch_user": false, "watch_device": false, "watch_ip": false},
			Unavailable:  []string{},
		},
	}
}

func benchDecide(b *testing.B, set *engine.PolicySet, in *engine.Input) {
	e := engine.New(set)
	ctx := context.Background()
	if _, err := e.Decide(ctx, in); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.Decide(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecidePayoutRego: the shipped payout policy (Rego), one decision.
func BenchmarkDecidePayoutRego(b *testing.B) {
	set, err := engine.Load(policies.Bundle())
	if err != nil {
		b.Fatal(err)
	}
	benchDecide(b, set, payoutInput())
}

// BenchmarkDecideLoginRego and BenchmarkDecideLoginCEL: the same login policy in both
// languages, on the same input.
func BenchmarkDecideLoginRego(b *testing.B) {
	set, err := engine.Load(policies.Bundle())
	if err != nil {
		b.Fatal(err)
	}
	in := payoutInput()
	in.Action = "login"
	benchDecide(b, set, in)
}

func BenchmarkDecideLoginCEL(b *testing.B) {
	set, err := engine.Load(policies.CEL())
	if err != nil {
		b.Fatal(err)
	}
	in := payoutInput()
	in.Action = "login"
	benchDecide(b, set, in)
}
