package nosession_test

import (
	"testing"
	"time"

	"github.com/verdict-engine/verdict/store/internal/nosession"
)

const maxAge = 10 * time.Minute

func TestCache(t *testing.T) {
	u := nosession.NewOff(maxAge)
	now := time.Unix(1_800_000_000, 0)
	cached := func(user string) bool { ok, _ := u.Has(user, now); return ok }
	lookup := func(user string) { _, gen := u.Has(user, now); u.Add(user, gen) }

	// Not live yet (the Postgres store: not listening yet): nothing is kept.
	lookup("a")
	if cached("a") {
		t.Fatal("cached before the listener is live")
	}
	u.SetLive(true, now)
	lookup("a")
	if !cached("a") {
		t.Fatal("not cached while live")
	}

	// A lookup that raced with a creation (of anyone's session) does not cache.
	_, gen := u.Has("b", now)
	u.Forget("someone")
	u.Add("b", gen)
	if cached("b") {
		t.Error("a lookup older than a creation cached its absence")
	}
	u.Forget("a")
	if cached("a") {
		t.Error("a user whose session was announced is still cached")
	}

	// Not live any more (the listener failed): nothing is served, nothing kept, and a lookup from before the
	// failure cannot add once it is back.
	lookup("c")
	_, gen = u.Has("d", now)
	u.SetLive(false, now)
	if cached("c") {
		t.Error("served while the listener is down")
	}
	lookup("c")
	u.SetLive(true, now)
	u.Add("d", gen)
	if cached("c") || cached("d") {
		t.Error("an entry from before or during the outage survived the restart")
	}
	// Going live again also empties what was there (announcements may have been missed).
	lookup("e")
	u.SetLive(true, now) // as if the failure had not been seen yet
	if cached("e") {
		t.Error("an entry survived the listener starting again")
	}

	// Entries are trusted for maxAge at most.
	lookup("f")
	now = now.Add(maxAge - time.Second)
	if !cached("f") {
		t.Error("dropped before its time")
	}
	now = now.Add(time.Second)
	if cached("f") {
		t.Error("kept past maxAge")
	}
}

func TestForgetAllAndStats(t *testing.T) {
	c := nosession.New(0)
	now := time.Now()
	for _, u := range []string{"a", "b"} {
		_, gen := c.Has(u, now)
		c.Add(u, gen)
	}
	if ok, _ := c.Has("a", now); !ok {
		t.Fatal("a not cached by a cache live from the start")
	}
	c.ForgetAll(now)
	if ok, _ := c.Has("b", now.Add(1000*time.Hour)); ok {
		t.Error("b survived ForgetAll")
	}
	if hits, lookups := c.Stats(); hits != 1 || lookups != 4 {
		t.Errorf("Stats = %d hits of %d lookups, want 1 of 4", hits, lookups)
	}
}
