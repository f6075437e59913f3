package velocity

// series holds one entity's events of one action, ascending by time.
type series struct {
	action  uint64 // hash of the action
	touched int64  // clock ms of the last call that touched it
	oldest  int64  // events[0].at when there are events: pruning needs no look at them
	events  []stamp
	// from1m and from1h are where the 1 m and 1 h windows started at the last count:
	// with time moving forward, the next start is at or just after them.
	from1m, from1h int
}

// stamp is a time (Unix ms) and a 64-bit hash: of the event id in a series, of the member
// in a distinct set.
type stamp struct {
	at   int64
	hash uint64
}

// observe prunes events at or before at-24h, records event id (a hash) at at unless it is
// there already at one of the times it was recorded with, and counts the events after
// at-w for each window w (recorded events stamped after at included). added tells whether it recorded the event.
func (s *series) observe(at int64, id uint64, rec recorded) (c1m, c1h, c24h int64, added bool) {
	if len(s.events) > 0 && s.oldest <= at-day {
		k := upperBound(s.events, at-day)
		s.events = s.events[k:]
		s.from1m, s.from1h = max(s.from1m-k, 0), max(s.from1h-k, 0)
		if len(s.events) > 0 {
			s.oldest = s.events[0].at
		}
	}
	hi := searchFromEnd(s.events, at) // events in [0, hi) are at or before at
	added = !s.holds(id, rec.first) && (rec.last == rec.first || !s.holds(id, rec.last))
	if added {
		if hi == len(s.events) {
			s.events = append(s.events, stamp{at: at, hash: id})
		} else {
			s.events = append(s.events, stamp{})
			copy(s.events[hi+1:], s.events[hi:])
			s.events[hi] = stamp{at: at, hash: id}
		}
		if hi == 0 {
			s.oldest = at
		}
		hi++
	}
	// Windows are open at the top: an event stamped a little after at (a concurrent
	// request whose clock read came later but that was recorded first) counts too, so n
	// concurrent events always see the counts 1..n.
	all := s.events
	s.from1m = windowStart(all, s.from1m, at-minute)
	s.from1h = windowStart(all, s.from1h, at-hour)
	// Every remaining event is after at-24h, so all of them are in the 24 h window.
	n := len(all)
	return int64(n - s.from1m), int64(n - s.from1h), int64(n), added
}

// holds reports whether the series has event id at time at.
func (s *series) holds(id uint64, at int64) bool {
	for j := searchFromEnd(s.events, at) - 1; j >= 0 && s.events[j].at == at; j-- {
		if s.events[j].hash == id {
			return true
		}
	}
	return false
}

// windowStart returns the index of the first element of a later than cut, starting from
// hint, the previous answer: when time moves forward, the answer is at or a few steps
// after it, and the elements stepped over are next to each other in memory. Any hint
// gives the right answer; a poor one costs a binary search.
func windowStart(a []stamp, hint int, cut int64) int {
	if hint > len(a) || hint > 0 && a[hint-1].at > cut {
		return searchFromEnd(a, cut)
	}
	for end := min(hint+8, len(a)); hint < end; hint++ {
		if a[hint].at > cut {
			return hint
		}
	}
	return hint + upperBound(a[hint:], cut)
}

// upperBound returns the index of the first element of a later than v (len(a) if none).
func upperBound(a []stamp, v int64) int {
	lo, hi := 0, len(a)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if a[m].at <= v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// searchFromEnd is upperBound galloping from the end: events are mostly recorded and
// counted near the newest one, so this touches the last cache lines of a only.
func searchFromEnd(a []stamp, v int64) int {
	hi := len(a) // a[hi:] are all later than v
	for step := 1; hi > 0 && a[hi-1].at > v; step *= 2 {
		lo := max(hi-step, 0)
		if a[lo].at > v {
			hi = lo
			continue
		}
		// a[lo] is at or before v and a[hi-1] after it.
		return lo + 1 + upperBound(a[lo+1:hi-1], v)
	}
	return hi
}
