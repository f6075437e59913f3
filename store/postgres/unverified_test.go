package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/verdict-engine/verdict/store"
	"github.com/verdict-engine/verdict/store/postgres"
)

// waitFor polls cond every 10 ms for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func createSession(t *testing.T, s *postgres.Store, id, user string) {
	t.Helper()
	_, created, err := s.CreateVerification(t.Context(), store.NewVerification{
		Verification: store.Verification{ID: id, UserID: user, Provider: "onfido", Status: store.StatusInitiated}})
	if err != nil || !created {
		t.Fatalf("CreateVerification(%s) = created %v, %v", id, created, err)
	}
}

// hasSession asks both ways, one by one and batched (they share the cache), and fails
// the test if they disagree.
func hasSession(t *testing.T, s *postgres.Store, user string) bool {
	t.Helper()
	_, err := s.LatestVerification(t.Context(), user)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	one, berr := s.LatestVerifications(t.Context(), []string{user})
	if berr != nil {
		t.Fatal(berr)
	}
	_, batched := one[user]
	if batched != (err == nil) {
		t.Fatalf("LatestVerification(%s) found %v, LatestVerifications found %v", user, err == nil, batched)
	}
	return batched
}

func live(s *postgres.Store) bool { l, _, _ := s.VerificationCacheStats(); return l }

func hits(s *postgres.Store) int64 { _, h, _ := s.VerificationCacheStats(); return h }

// A user seen without a session is then answered from memory, and a session created for
// them by another replica (or by this one) is seen as soon as the database announces it.
func TestVerificationCacheSeesSessionsOtherReplicasCreate(t *testing.T) {
	schema := newSchema(t)
	a, b := openStore(t, schema), openStore(t, schema)
	if hasSession(t, a, "u1") {
		t.Fatal("u1 has a session in a new schema")
	}
	waitFor(t, "the listener to start", func() bool { return live(a) })

	// Cached after one lookup while listening: the next ones are hits.
	if hasSession(t, a, "u1") {
		t.Fatal("u1 has a session")
	}
	before := hits(a)
	for range 5 {
		if hasSession(t, a, "u1") {
			t.Fatal("u1 has a session")
		}
	}
	if got := hits(a) - before; got != 10 {
		t.Errorf("10 lookups of a user known to have no session made %d cache hits, want 10", got)
	}

	// Another replica creates a session: a sees it once notified.
	createSession(t, b, "ver-1", "u1")
	start := time.Now()
	waitFor(t, "replica a to see u1's new session", func() bool { return hasSession(t, a, "u1") })
	t.Logf("replica a saw the session after %v", time.Since(start))

	// This replica creates one: seen at once, without waiting for the notification.
	if hasSession(t, a, "u2") || hasSession(t, a, "u2") {
		t.Fatal("u2 has a session")
	}
	createSession(t, a, "ver-2", "u2")
	if !hasSession(t, a, "u2") {
		t.Error("a does not see the session it created itself")
	}

	// Many users in one batched lookup: the cached ones are not asked again, the rest are.
	users := make([]string, 50)
	for i := range users {
		users[i] = fmt.Sprintf("batch-%d", i)
	}
	if got, err := a.LatestVerifications(t.Context(), users); err != nil || len(got) != 0 {
		t.Fatalf("LatestVerifications = %v, %v", got, err)
	}
	createSession(t, b, "ver-3", "batch-7")
	waitFor(t, "replica a to see batch-7's new session", func() bool {
		got, err := a.LatestVerifications(t.Context(), append(users, "u1"))
		if err != nil {
			t.Fatal(err)
		}
		return len(got) == 2 && got["batch-7"].ID == "ver-3" && got["u1"].ID == "ver-1"
	})
}

// A user id too long for a notification's payload does not fail the insert: every
// listener forgets everyone instead.
func TestVerificationCacheWithAnOverlongUserID(t *testing.T) {
	schema := newSchema(t)
	a, b := openStore(t, schema), openStore(t, schema)
	long := strings.Repeat("x", 9000)
	for _, u := range []string{"u1", long} {
		hasSession(t, a, u)
	}
	waitFor(t, "the listener to start", func() bool { return live(a) })
	for _, u := range []string{"u1", long} {
		if hasSession(t, a, u) {
			t.Fatalf("%.10s… has a session", u)
		}
	}
	createSession(t, b, "ver-long", long)
	waitFor(t, "replica a to see the overlong id's session", func() bool { return hasSession(t, a, long) })
	if hasSession(t, a, "u1") {
		t.Error("u1 has a session")
	}
}

// While the listener is down nothing is served from the cache, and when it listens again
// the cache starts empty: a session created while nobody was listening is not missed.
func TestVerificationCacheSurvivesLosingItsListener(t *testing.T) {
	schema := newSchema(t)
	a, b := openStore(t, schema), openStore(t, schema)
	hasSession(t, a, "u1")
	waitFor(t, "the listener to start", func() bool { return live(a) })
	for _, u := range []string{"u1", "u2", "u3"} {
		if hasSession(t, a, u) {
			t.Fatalf("%s has a session", u)
		}
	}
	conn := admin(t)
	for round, user := range []string{"u1", "u2", "u3"} {
		var killed int
		if err := conn.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = $1`, "verdict verification listener "+schema).Scan(&killed); err != nil {
			t.Fatal(err)
		}
		if killed != 1 {
			t.Fatalf("round %d: terminated %d listener backends, want 1", round, killed)
		}
		// Created while the listener is (probably) down: its notification goes unheard.
		createSession(t, b, fmt.Sprintf("ver-%d", round), user)
		waitFor(t, "replica a to see "+user+"'s new session", func() bool { return hasSession(t, a, user) })
		waitFor(t, "the listener to come back", func() bool { return live(a) })
	}
}

// A database without the trigger that announces new sessions (not migrated) never turns
// the cache on.
func TestVerificationCacheNeedsTheTrigger(t *testing.T) {
	schema := newSchema(t)
	a := openStore(t, schema)
	if _, err := admin(t).Exec(t.Context(), `DROP TRIGGER verifications_notify ON `+table(schema, "verifications")); err != nil {
		t.Fatal(err)
	}
	b := openStore(t, schema) // migrating again does not bring it back: 0009 is recorded as applied
	for range 5 {
		if hasSession(t, a, "u1") {
			t.Fatal("u1 has a session")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if live(a) || hits(a) != 0 {
		t.Fatalf("cache live %v with %d hits on a database without the trigger", live(a), hits(a))
	}
	createSession(t, b, "ver-1", "u1")
	if !hasSession(t, a, "u1") {
		t.Error("a does not see a session created by b")
	}
}

// Close stops the listener: its backend goes away.
func TestCloseStopsTheVerificationListener(t *testing.T) {
	schema := newSchema(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	a := openStore(t, schema)
	hasSession(t, a, "u1")
	waitFor(t, "the listener to start", func() bool { return live(a) })
	a.Close()
	conn := admin(t)
	waitFor(t, "the listener's backend to end", func() bool {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`,
			"verdict verification listener "+schema).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
}
