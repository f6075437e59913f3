package velocity

// inlineSet is the number of members a distinct set holds without allocating.
const inlineSet = 3

// distinct is a set of members (64-bit id hashes) with the time each was last seen, like a
// Redis sorted set updated with ZADD GT, counted over a sliding window. Up to inlineSet
// members live inline, unordered; past that, in a bigSet.
type distinct struct {
	inline [inlineSet]stamp
	n      int // members in inline, while big is nil
	big    *bigSet
}

// bigSet is a distinct set too large to scan on every call.
type bigSet struct {
	last map[uint64]int64 // member → last seen
	// order lists (time, member) ascending by time, so expired members are found from the
	// front. A member's entry is stale once the member is seen later; stale entries are
	// skipped when popped and dropped when they outnumber the live ones.
	order []stamp
}

// observe records member as seen at at (if add is set), drops the members last seen at or
// before at-window and returns how many remain.
func (d *distinct) observe(member uint64, add bool, at, window int64) int64 {
	cut := at - window
	if d.big != nil {
		if add {
			d.big.add(member, at)
		}
		d.big.prune(cut)
		return int64(len(d.big.last))
	}
	found := !add
	kept := 0
	for _, s := range d.inline[:d.n] {
		if add && s.hash == member {
			found = true
			s.at = max(s.at, at)
		}
		if s.at > cut {
			d.inline[kept] = s
			kept++
		}
	}
	d.n = kept
	if found { // or nothing to add
		return int64(d.n)
	}
	// A new member: always inside the window, as cut < at.
	if d.n < inlineSet {
		d.inline[d.n] = stamp{at: at, hash: member}
		d.n++
		return int64(d.n)
	}
	b := &bigSet{last: make(map[uint64]int64, 2*inlineSet)}
	for _, s := range d.inline[:d.n] {
		b.add(s.hash, s.at)
	}
	b.add(member, at)
	*d = distinct{big: b}
	return int64(len(b.last))
}

func (b *bigSet) add(member uint64, at int64) {
	if prev, ok := b.last[member]; ok && prev >= at {
		return
	}
	b.last[member] = at
	i := len(b.order)
	if i > 0 && b.order[i-1].at > at {
		i = upperBound(b.order, at)
	}
	b.order = append(b.order, stamp{})
	copy(b.order[i+1:], b.order[i:])
	b.order[i] = stamp{at: at, hash: member}
	if len(b.order) > 2*len(b.last)+8 {
		b.compact()
	}
}

func (b *bigSet) prune(cut int64) {
	n := 0
	for n < len(b.order) && b.order[n].at <= cut {
		s := b.order[n]
		if last, ok := b.last[s.hash]; ok && last == s.at {
			delete(b.last, s.hash)
		}
		n++
	}
	if n > 0 {
		b.order = b.order[n:]
	}
}

// compact drops stale entries from order.
func (b *bigSet) compact() {
	kept := b.order[:0]
	for _, s := range b.order {
		if last, ok := b.last[s.hash]; ok && last == s.at {
			kept = append(kept, s)
		}
	}
	b.order = kept
}

func (d *distinct) reset() { *d = distinct{} }
