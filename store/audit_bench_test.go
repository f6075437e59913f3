package store

import (
	"encoding/json"
	"testing"
	"time"
)

func benchDecision() DecisionRecord {
	return DecisionRecord{
		ID: "0193a5e2-7c4d-7b3e-9f1a-2b3c4d5e6f70", Action: "payout", SubjectID: "user-1234", Outcome: "review",
		ReasonCodes: []string{"PAYOUT_NEW_BENEFICIARY", "VELOCITY_USER_24H"}, PolicyHash: "sha256:4b227777d4dd1fc61c6f884f48641d02b4d121d3fd328cb08b5531fcacdabf8a",
		Input:    json.RawMessage(`{"action":"payout","user":{"id":"user-1234","account_age_days":412,"country":"DE","verification":{"status":"approved","provider":"onfido","score":91.5}},"device":{"id":"dev-1","first_seen":"2026-01-04T10:00:00Z","users_30d":1},"ip":{"address_sha256":"9f2c4e1a7b3d5f6e8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f","asn":3320,"is_proxy":false},"velocity":{"user":{"1m":1,"1h":3,"24h":9},"device":{"1m":1,"1h":2,"24h":4},"ip":{"1m":2,"1h":5,"24h":11}},"payout":{"amount_minor":125000,"currency":"EUR","beneficiary_new":true},"signals":{"unavailable":[]}}`),
		Response: json.RawMessage(`{"outcome":"review","score":62.5,"reasons":[{"code":"PAYOUT_NEW_BENEFICIARY"},{"code":"VELOCITY_USER_24H"}]}`),
		Actor:    "key_1", CorrelationID: "req-1",
	}
}

// BenchmarkDecisionEvent measures the per-decision audit work a store does: validating the
// record, building its decision.created event and linking it onto the chain.
func BenchmarkDecisionEvent(b *testing.B) {
	rec := benchDecision()
	now := time.Now()
	b.Run("validate", func(b *testing.B) {
		for b.Loop() {
			if err := ValidateDecision(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("build", func(b *testing.B) {
		for b.Loop() {
			if _, err := DecisionCreatedEvent(rec, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	ev, _ := DecisionCreatedEvent(rec, now)
	b.Run("link", func(b *testing.B) {
		prev := make([]byte, 32)
		for b.Loop() {
			e := ev
			if err := LinkEvent(&e, 41, prev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verify", func(b *testing.B) {
		e := ev
		_ = LinkEvent(&e, 41, make([]byte, 32))
		for b.Loop() {
			_ = ChainHash(e.PrevHash, e)
		}
	})
}
