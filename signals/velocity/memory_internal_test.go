package velocity

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/verdict-engine/verdict/signals"
)

// TestDistinctMatchesNaive drives a distinct set through its inline and map forms with
// random members and times and compares it with a plain map after every call.
func TestDistinctMatchesNaive(t *testing.T) {
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 1))
		var d distinct
		naive := map[uint64]int64{}
		at := int64(1_700_000_000_000)
		for i := range 2000 {
			at += r.Int64N(2*hour) - hour/2
			member := uint64(r.IntN(1 + int(seed)*3))
			add := r.IntN(8) != 0
			if add {
				if last, ok := naive[member]; !ok || last < at {
					naive[member] = at
				}
			}
			for m, last := range naive {
				if last <= at-day {
					delete(naive, m)
				}
			}
			if got := d.observe(member, add, at, day); got != int64(len(naive)) {
				t.Fatalf("seed %d call %d: count = %d, want %d", seed, i, got, len(naive))
			}
		}
	}
}

// TestEvictIdle checks that state no call touched for its longest window is dropped, so
// memory is bounded by recent traffic, and that state in use is kept.
func TestEvictIdle(t *testing.T) {
	now := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	m := NewMemory(WithClock(func() time.Time { return now }))
	ctx := context.Background()
	observe := func(prefix string, n int) {
		t.Helper()
		for i := range n {
			id := prefix + strconv.Itoa(i)
			ev := signals.Event{ID: "ev-" + id, Action: "login", UserID: "u-" + id, DeviceID: "d-" + id, IP: "ip-" + id, At: now}
			if _, err := m.Observe(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	observe("old-", 5000)
	if u, d, ip := m.users.len(), m.devices.len(), m.ips.len(); u != 5000 || d != 5000 || ip != 5000 {
		t.Fatalf("after 5000 events: %d users, %d devices, %d IPs; want 5000 each", u, d, ip)
	}

	// A day and a bit later, new traffic evicts the idle users and IPs, a few per call;
	// devices are kept for 30 days.
	now = now.Add(25 * time.Hour)
	observe("new-", 5000)
	if u, d, ip := m.users.len(), m.devices.len(), m.ips.len(); u != 5000 || d != 10000 || ip != 5000 {
		t.Errorf("25 h later, after 5000 new events: %d users, %d devices, %d IPs; want 5000, 10000, 5000", u, d, ip)
	}
	if n := m.seen.len(); n != 5000 {
		t.Errorf("25 h later: %d event ids remembered, want 5000", n)
	}
	now = now.Add(30 * 24 * time.Hour)
	observe("newer-", 5000)
	if u, d, ip := m.users.len(), m.devices.len(), m.ips.len(); u != 5000 || d != 5000 || ip != 5000 {
		t.Errorf("30 d later: %d users, %d devices, %d IPs; want 5000 each", u, d, ip)
	}

	// An entity forgotten by eviction is new again: the device is unknown, counts restart.
	obs, err := m.Observe(ctx, signals.Event{ID: "again", Action: "login", UserID: "u-old-1", DeviceID: "d-old-1", At: now})
	if err != nil {
		t.Fatal(err)
	}
	if obs.User.Count24h != 1 || obs.DeviceKnown {
		t.Errorf("evicted user and device seen again: %+v, want counts restarted and device unknown", obs)
	}
}

// TestIdleSeriesDropped checks that an action no call touched for 24 h is forgotten even
// while its entity stays in use, as its own Redis key would have expired.
func TestIdleSeriesDropped(t *testing.T) {
	now := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	m := NewMemory(WithClock(func() time.Time { return now }))
	ctx := context.Background()
	at := now
	mustObserve := func(id, action string) signals.Observation {
		t.Helper()
		obs, err := m.Observe(ctx, signals.Event{ID: id, Action: action, UserID: "u", At: at})
		if err != nil {
			t.Fatal(err)
		}
		return obs
	}
	mustObserve("p1", "payout")
	// Backfilled events keep old event times while the clock moves on.
	now = now.Add(23 * time.Hour)
	mustObserve("l1", "login")
	now = now.Add(2 * time.Hour)
	mustObserve("l2", "login")
	if n := len(m.users.shardOf(m.hash.key("u")).m[m.hash.key("u")].counts); n != 1 {
		t.Errorf("%d series kept, want 1 (payout idle for 25 h)", n)
	}
	if obs := mustObserve("p2", "payout"); obs.User.Count24h != 1 {
		t.Errorf("payout after its series expired: Count24h = %d, want 1", obs.User.Count24h)
	}
}

func (t *table) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

func (t *table) shardOf(k key) *shard { return &t.shards[k[1]&(shardCount-1)] }

func (t *seenTable) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.first)
		s.mu.Unlock()
	}
	return n
}
