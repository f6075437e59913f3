package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verdict-engine/verdict/store"
)

// benchInput is a decision input of a realistic size (~1 KiB); benchSmallInput a minimal one
// (~100 B). Records share the bytes: a store copies what it writes.
const (
	benchInput = `{"action":"payout","user":{"id":"user-4711","account_age_days":412,"country":"DE",
"verification":{"status":"approved","provider":"onfido","score":91.5}},"device":{"id":"dev-0815","first_seen":"2026-01-04T10:00:00Z",
"users_30d":1},"ip":{"address_sha256":"9f2c4e1a7b3d5f6e8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f","asn":3320,"is_proxy":false},
"velocity":{"user":{"1m":1,"1h":3,"24h":9},"device":{"1m":1,"1h":2,"24h":4},"ip":{"1m":2,"1h":5,"24h":11}},
"payout":{"amount_minor":125000,"currency":"EUR","beneficiary_new":true},"signals":{"unavailable":[]}}`
	benchSmallInput = `{"action":"login","user":{"id":"user-4711"},"ip":{"asn":3320},"device":{"id":"dev-0815"}}`
	benchResponse   = `{"outcome":"review","score":62.5,"reasons":[{"code":"PAYOUT_NEW_BENEFICIARY"},{"code":"VELOCITY_USER_24H"}]}`
)

func benchRecord(n int64, input string) store.DecisionRecord {
	id := strconv.FormatInt(n, 10)
	return store.DecisionRecord{
		ID:             "bench-" + id,
		Action:         "payout",
		SubjectID:      "user-" + id,
		Outcome:        "review",
		Score:          62.5,
		ReasonCodes:    []string{"PAYOUT_NEW_BENEFICIARY", "VELOCITY_USER_24H"},
		PolicyVersion:  "payout-v7",
		PolicyHash:     "sha256:4b227777d4dd1fc61c6f884f48641d02b4d121d3fd328cb08b5531fcacdabf8a",
		Input:          json.RawMessage(input),
		Response:       json.RawMessage(benchResponse),
		IdempotencyKey: "idem-" + id,
		RequestHash:    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		CreatedAt:      time.Now(),
		Actor:          "key_bench",
		CorrelationID:  "req-" + id,
	}
}

// BenchmarkWriteDecisions measures WriteDecisions on s for batches of 1, 10 and 100
// realistic records (about 1 KiB of input each, with idempotency keys), and of 100 records
// with a small input (~100 B): one op is one batch, one durable transaction. It also
// measures 64 concurrent callers committing single decisions through a
// store.GroupCommitter, where one op is one decision.
func BenchmarkWriteDecisions(b *testing.B, s store.Store) {
	var seq atomic.Int64
	cases := []struct {
		size  int
		input string
		name  string
	}{
		{1, benchInput, "1KiB"}, {10, benchInput, "1KiB"}, {100, benchInput, "1KiB"}, {100, benchSmallInput, "100B"},
	}
	for _, c := range cases {
		b.Run(fmt.Sprintf("batch=%d/input=%s", c.size, c.name), func(b *testing.B) {
			ctx := context.Background()
			recs := make([]store.DecisionRecord, c.size)
			for b.Loop() {
				for i := range recs {
					recs[i] = benchRecord(seq.Add(1), c.input)
				}
				results, err := s.WriteDecisions(ctx, recs)
				if err != nil {
					b.Fatal(err)
				}
				for _, err := range results {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*c.size), "ns/record")
		})
	}
	b.Run("group-commit/callers=64", func(b *testing.B) {
		g := store.NewGroupCommitter(s)
		defer g.Close(context.Background())
		b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			for pb.Next() {
				if err := g.Commit(ctx, benchRecord(seq.Add(1), benchInput)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
