package velocity

import "sync"

// seenTable remembers, for 24 h by the clock, the event time every event id observed was
// first recorded with, so that an id observed again is matched against its records
// whatever the time it comes with, as a Redis sorted set matches a member whatever its
// score. An id is recorded again, with a new time, only where its previous record fell
// out of the 24 h window; the table keeps the last such time too, and two times cover all
// of an id's records but in contrived histories.
//
// It is keyed by the second half of the id's key, series by the first: a collision here
// only costs a look for an event that is not there.
type seenTable struct {
	shards [shardCount]seenShard
}

type seenShard struct {
	mu    sync.Mutex
	first map[uint64]int64 // id → event time first recorded with, Unix ms
	last  map[uint64]int64 // id → event time last recorded again with (rare)
	// queue lists the ids in the order they were added (so by clock time) from head on;
	// expired ones are dropped from the front.
	queue []seenEntry
	head  int
}

// recorded holds the first and the last event time (Unix ms) an id was recorded with.
type recorded struct{ first, last int64 }

type seenEntry struct {
	id  uint64
	now int64 // clock ms when added
}

func (t *seenTable) init() {
	for i := range t.shards {
		t.shards[i].first = make(map[uint64]int64)
	}
}

func (t *seenTable) shard(id key) *seenShard { return &t.shards[id[0]&(shardCount-1)] }

// lookup returns the times id was recorded with, and whether it was observed before;
// a new id is taken as recorded at at (at clock time now).
func (t *seenTable) lookup(id key, at, now int64) (recorded, bool) {
	s := t.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now-day, evictPerCall)
	if first, ok := s.first[id[1]]; ok {
		r := recorded{first: first, last: first}
		if last, ok := s.last[id[1]]; ok {
			r.last = last
		}
		return r, true
	}
	s.first[id[1]] = at
	s.queue = append(s.queue, seenEntry{id: id[1], now: now})
	return recorded{first: at, last: at}, false
}

// recordedAgain notes that id, observed before, was recorded again at at.
func (t *seenTable) recordedAgain(id key, at int64) {
	s := t.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.first[id[1]]; ok {
		if s.last == nil {
			s.last = make(map[uint64]int64)
		}
		s.last[id[1]] = at
	}
}

// expire forgets up to n ids added at or before cut.
func (s *seenShard) expire(cut int64, n int) {
	for ; n > 0 && s.head < len(s.queue) && s.queue[s.head].now <= cut; n-- {
		id := s.queue[s.head].id
		delete(s.first, id)
		if s.last != nil {
			delete(s.last, id)
		}
		s.head++
	}
	// Move the live entries to the front once the dead prefix outgrows them: amortized
	// O(1) per entry.
	if s.head > 0 && s.head >= len(s.queue)-s.head {
		n := copy(s.queue, s.queue[s.head:])
		s.queue = s.queue[:n]
		s.head = 0
	}
}
