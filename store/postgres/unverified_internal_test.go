package postgres

import (
	"testing"
	"time"
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
