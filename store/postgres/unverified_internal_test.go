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

func TestUnverifiedCache(t *testing.T) {
	var u unverified
	now := time.Unix(1_800_000_000, 0)
	cached := func(user string) bool { ok, _ := u.has(user, now); return ok }
	lookup := func(user string) { _, gen := u.has(user, now); u.add(user, gen) }

	// Not listening yet: nothing is kept.
	lookup("a")
	if cached("a") {
		t.Fatal("cached before the listener is live")
	}
	u.setLive(true, now)
	lookup("a")
	if !cached("a") {
		t.Fatal("not cached while live")
	}

	// A lookup that raced with a creation (of anyone's session) does not cache.
	_, gen := u.has("b", now)
	u.forget("someone")
	u.add("b", gen)
	if cached("b") {
		t.Error("a lookup older than a creation cached its absence")
	}
	u.forget("a")
	if cached("a") {
		t.Error("a user whose session was announced is still cached")
	}

	// The listener fails: nothing is served, nothing kept, and a lookup from before the
	// failure cannot add once it is back.
	lookup("c")
	_, gen = u.has("d", now)
	u.setLive(false, now)
	if cached("c") {
		t.Error("served while the listener is down")
	}
	lookup("c")
	u.setLive(true, now)
	u.add("d", gen)
	if cached("c") || cached("d") {
		t.Error("an entry from before or during the outage survived the restart")
	}
	// Going live again also empties what was there (announcements were missed meanwhile).
	lookup("e")
	u.live = false // as if the failure had not been seen yet
	u.setLive(true, now)
	if cached("e") {
		t.Error("an entry survived the listener starting again")
	}

	// Entries are trusted for unverifiedMaxAge at most.
	lookup("f")
	now = now.Add(unverifiedMaxAge - time.Second)
	if !cached("f") {
		t.Error("dropped before its time")
	}
	now = now.Add(time.Second)
	if cached("f") {
		t.Error("kept past unverifiedMaxAge")
	}
}

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
		s.probe = p
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
		if i == 50 && !hearing.unverified.isLive() {
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
