package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/verdict-engine/verdict/store"
)

// A listener that does not hear its own probes (here: sent where it does not listen, as a
// pooler that drops notifications would) never turns the cache on; one that hears them
// turns it on and keeps it on.
func TestHeartbeatGatesTheCache(t *testing.T) {
	dsn := os.Getenv("VERDICT_TEST_DATABASE_URL")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	ctx := t.Context()
	open := func(p probeConfig) *Store {
		s, err := Open(ctx, dsn, WithSchema(schema))
		if err != nil {
			t.Fatalf("postgres tests need a server (set VERDICT_TEST_DATABASE_URL): %v", err)
		}
		t.Cleanup(func() { s.Close() })
		if err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		s.listener.probe = p
		return s
	}
	deaf := open(probeConfig{every: 20 * time.Millisecond, wait: 100 * time.Millisecond, channel: "verdict_nowhere"})
	t.Cleanup(func() {
		if _, err := deaf.pool.Exec(context.Background(), `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	hearing := open(probeConfig{every: 20 * time.Millisecond, wait: 2 * time.Second, channel: notifyChannel})
	for i := range 100 {
		for _, s := range []*Store{deaf, hearing} {
			if _, err := s.LatestVerification(ctx, "u1"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("LatestVerification = %v", err)
			}
		}
		if i == 50 && !hearing.unverified.Live() {
			t.Error("a listener that hears its probes did not turn the cache on within 500 ms")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if live, hits, _ := deaf.VerificationCacheStats(); live || hits != 0 {
		t.Errorf("deaf listener: cache live %v with %d hits, want off", live, hits)
	}
	if live, hits, _ := hearing.VerificationCacheStats(); !live || hits < 40 {
		t.Errorf("hearing listener: cache live %v with %d hits, want on with most lookups hits", live, hits)
	}
}
