package velocity

import (
	"hash/maphash"
	"sync"
)

const (
	// shardCount spreads entities over this many locks; a power of two.
	shardCount = 64
	// evictPerCall bounds the idle entities one call evicts, so eviction is amortized
	// over calls (each call adds at most one entity per table and can remove several).
	evictPerCall = 4
)

// key identifies an id by two independent 64-bit hashes of it. Keeping hashes instead of
// the caller's strings means no allocation to copy them, no reference to the caller's
// memory and nothing for the garbage collector to scan; a 128-bit collision is not a
// practical concern.
type key [2]uint64

type hasher struct{ seeds [2]maphash.Seed }

func newHasher() hasher {
	return hasher{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
}

func (h *hasher) key(s string) key {
	return key{maphash.String(h.seeds[0], s), maphash.String(h.seeds[1], s)}
}

// table holds the entities of one kind (users, devices or IPs), sharded by key.
type table struct {
	ttl    int64 // an entity no call touched for ttl ms (by the clock) is evicted
	shards [shardCount]shard
}

type shard struct {
	mu sync.Mutex
	m  map[key]*entity
	// queue holds every entity of the shard once, in the order they were queued from
	// head on; eviction looks at the front only. An entry is (entity, when queued).
	queue []queued
	head  int
}

type queued struct {
	e  *entity
	at int64
}

// entity is everything counted for one user, device or IP: the in-process equivalent of
// the Redis keys sharing one hash tag. Its first series and its small sets live inline, so
// that a typical call touches the entity and the tail of one series only: at this size of
// working set, each cache miss costs more than all the arithmetic.
type entity struct {
	key     key
	touched int64 // clock ms of the last call that touched it

	counts []series // one per action; starts in inline
	// set24 holds the distinct other entities seen in 24 h: devices for a user, users for
	// a device or an IP.
	set24  distinct
	inline [2]series
	set30  *distinct // a device's users over 30 d
	// first is the event that first saw a device, firstAt its time; firstSet tells
	// whether there was one.
	first    key
	firstAt  int64
	firstSet bool
}

func (t *table) init(ttl int64) {
	t.ttl = ttl
	for i := range t.shards {
		t.shards[i].m = make(map[key]*entity)
	}
}

// acquire locks the shard of k and returns it with the entity for k, created if new and
// marked as touched at now. idle is how long the entity had not been touched (0 when new).
// The caller unlocks s.mu. Each call also evicts up to evictPerCall idle entities of the
// shard.
func (t *table) acquire(k key, now int64) (s *shard, e *entity, idle int64) {
	s = &t.shards[k[1]&(shardCount-1)]
	s.mu.Lock()
	e = s.m[k]
	if e == nil {
		e = &entity{key: k}
		e.counts = e.inline[:0]
		s.m[k] = e
		s.queue = append(s.queue, queued{e: e, at: now})
	} else {
		idle = now - e.touched
	}
	e.touched = now
	s.evict(now-t.ttl, evictPerCall)
	return s, e, idle
}

// evict looks at up to n entities queued at or before cut: those not touched since are
// removed, the others queued again. An entity is thus looked at about once per ttl, and
// the one just touched is never removed (it was touched after cut).
func (s *shard) evict(cut int64, n int) {
	for ; n > 0 && s.head < len(s.queue) && s.queue[s.head].at <= cut; n-- {
		e := s.queue[s.head].e
		s.queue[s.head] = queued{}
		s.head++
		if e.touched <= cut {
			delete(s.m, e.key)
		} else {
			s.queue = append(s.queue, queued{e: e, at: e.touched})
		}
	}
	// Move the live entries to the front once the dead prefix outgrows them: amortized
	// O(1) per entry.
	if s.head > 0 && s.head >= len(s.queue)-s.head {
		n := copy(s.queue, s.queue[s.head:])
		clear(s.queue[n:])
		s.queue = s.queue[:n]
		s.head = 0
	}
}

// count records the event in its action's series, unless the series holds its id already,
// and returns the action's 1 m, 1 h and 24 h counts at the event's time. Series no call
// touched for 24 h are dropped first, as their Redis keys would have expired.
func (e *entity) count(in *event) (c1m, c1h, c24h int64) {
	var s *series
	for i := range e.counts {
		if in.now-e.counts[i].touched > day {
			e.dropIdle(in.now)
			break
		}
	}
	for i := range e.counts {
		if e.counts[i].action == in.action {
			s = &e.counts[i]
			break
		}
	}
	if s == nil {
		e.counts = append(e.counts, series{action: in.action})
		s = &e.counts[len(e.counts)-1]
	}
	s.touched = in.now
	c1m, c1h, c24h, added := s.observe(in.at, in.id[0], in.recorded)
	if added && in.recorded.first != in.at {
		in.again = true
	}
	return c1m, c1h, c24h
}

func (e *entity) dropIdle(now int64) {
	kept := e.counts[:0]
	for _, c := range e.counts {
		if now-c.touched <= day {
			kept = append(kept, c)
		}
	}
	clear(e.counts[len(kept):])
	e.counts = kept
}

// users30 returns the device's 30-day set of users, creating it.
func (e *entity) users30() *distinct {
	if e.set30 == nil {
		e.set30 = new(distinct)
	}
	return e.set30
}
