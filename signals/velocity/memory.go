// Package velocity holds Memory, the in-process implementation of signals.Velocity and
// the embedded default. It counts exactly what signals/redis counts, with the same
// window bounds, idempotency and expiry rules; both pass signals/velocitytest.
package velocity

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"time"

	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/signals"
)

// Window lengths in Unix milliseconds, the resolution counting works at (as in Redis).
const (
	minute = int64(time.Minute / time.Millisecond)
	hour   = int64(time.Hour / time.Millisecond)
	day    = int64(24 * time.Hour / time.Millisecond)
	month  = 30 * day
)

// ErrInvalidEvent is returned (wrapped) by Observe for an event without an ID or without
// a time: without an ID, recording cannot be idempotent.
var ErrInvalidEvent = errors.New("invalid velocity event")

var _ signals.Velocity = (*Memory)(nil)

// Memory counts events in process memory. It is safe for concurrent use; the zero value is
// not usable, call NewMemory. State is lost when the process exits.
//
// Events are counted by their own time (ev.At, millisecond resolution): a window of
// length w for an event at At covers (At-w, At]. Every entity (user, device, IP) lives in
// one of a fixed number of mutex-guarded shards, and each Observe holds one shard lock per
// entity, so the events of one entity are recorded and counted atomically. Ids are kept as
// 128-bit hashes (64-bit within one entity's sets), never as the caller's strings.
//
// State that no call touched for its longest window by the clock (24 h; 30 d for a
// device's first-seen time and users) is evicted a few entries at a time on later calls,
// as keys expire in Redis: memory stays bounded by recent traffic, about 150 bytes per
// event of the last 24 h, without a background goroutine.
type Memory struct {
	clock   func() time.Time
	hash    hasher
	seen    seenTable
	users   table
	devices table
	ips     table
}

// Option configures a Memory.
type Option func(*options)

type options struct {
	clock func() time.Time
}

// WithClock sets the clock that decides when idle state is evicted (default time.Now).
// It never affects counts: those follow the events' own times.
func WithClock(clock func() time.Time) Option {
	return func(o *options) {
		if clock != nil {
			o.clock = clock
		}
	}
}

// NewMemory returns an empty Memory.
func NewMemory(opts ...Option) *Memory {
	o := options{clock: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	m := &Memory{clock: o.clock, hash: newHasher()}
	m.seen.init()
	m.users.init(day)
	m.devices.init(month)
	m.ips.init(day)
	return m
}

// Observe records ev and returns the counts that include it, as documented on
// signals.Velocity. An entity whose id is empty is neither recorded nor counted: its
// window is zero. An event whose ID was already recorded for an entity and action (in the
// last 24 h) is not counted again there; Observe then returns the counts as they stand at
// ev.At, and DeviceKnown is false again if that event was the one that first saw the
// device. DeviceFirstSeen has millisecond resolution and is in UTC.
//
// Observe returns an error wrapping ErrInvalidEvent for an event without ID or time, and
// ctx.Err() if ctx is already done; it never blocks on anything but its shard locks.
func (m *Memory) Observe(ctx context.Context, ev signals.Event) (signals.Observation, error) {
	if err := validate(ev); err != nil {
		return signals.Observation{}, err
	}
	if err := ctx.Err(); err != nil {
		return signals.Observation{}, fmt.Errorf("observe event %q: %w", ev.ID, err)
	}
	in := event{
		at:     ev.At.UnixMilli(),
		now:    m.clock().UnixMilli(),
		action: maphash.String(m.hash.seeds[0], ev.Action),
		id:     m.hash.key(ev.ID),
	}
	var seen bool
	in.recorded, seen = m.seen.lookup(in.id, in.at, in.now)
	if in.hasUser = ev.UserID != ""; in.hasUser {
		in.user = m.hash.key(ev.UserID)
	}
	if in.hasDevice = ev.DeviceID != ""; in.hasDevice {
		in.device = m.hash.key(ev.DeviceID)
	}

	var obs signals.Observation
	if in.hasUser {
		obs.User = m.observeUser(&in)
	}
	if in.hasDevice {
		m.observeDevice(&in, &obs)
	}
	if ev.IP != "" {
		obs.IP = m.observeIP(m.hash.key(ev.IP), &in)
	}
	if seen && in.again && in.at != in.recorded.last {
		m.seen.recordedAgain(in.id, in.at)
	}
	return obs, nil
}

// event is an Event as Memory counts it: times in Unix ms, ids hashed.
type event struct {
	at, now            int64    // event time, clock time
	recorded           recorded // event times the id was recorded with before
	again              bool     // recorded now, though observed before
	action             uint64
	id, user, device   key
	hasUser, hasDevice bool
}

func validate(ev signals.Event) error {
	switch {
	case ev.ID == "":
		return fmt.Errorf("observe event: %w: empty id", ErrInvalidEvent)
	case ev.At.IsZero():
		return fmt.Errorf("observe event %q: %w: zero time", ev.ID, ErrInvalidEvent)
	}
	return nil
}

func (m *Memory) observeUser(in *event) engine.Window {
	s, e, idle := m.users.acquire(in.user, in.now)
	defer s.mu.Unlock()
	var w engine.Window
	w.Count1m, w.Count1h, w.Count24h = e.count(in)
	if idle > day {
		e.set24.reset()
	}
	w.DistinctDevices24h = e.set24.observe(in.device[0], in.hasDevice, in.at, day)
	return w
}

func (m *Memory) observeDevice(in *event, obs *signals.Observation) {
	s, e, idle := m.devices.acquire(in.device, in.now)
	defer s.mu.Unlock()
	w := &obs.Device
	w.Count1m, w.Count1h, w.Count24h = e.count(in)
	if idle > day {
		e.set24.reset()
	}
	if idle > month {
		// What Redis forgets with its keys' 30-day expiry: the device is new again.
		// Eviction may or may not have dropped the entity already (it depends on the
		// shard's other traffic); the answer must not.
		e.firstSet, e.set30 = false, nil
	}
	w.DistinctUsers24h = e.set24.observe(in.user[0], in.hasUser, in.at, day)
	obs.DeviceUsers30d = e.users30().observe(in.user[0], in.hasUser, in.at, month)
	if !e.firstSet {
		e.first, e.firstAt, e.firstSet = in.id, in.at, true
	}
	obs.DeviceKnown = e.first != in.id
	obs.DeviceFirstSeen = time.UnixMilli(e.firstAt).UTC()
}

func (m *Memory) observeIP(ip key, in *event) engine.Window {
	s, e, idle := m.ips.acquire(ip, in.now)
	defer s.mu.Unlock()
	var w engine.Window
	w.Count1m, w.Count1h, w.Count24h = e.count(in)
	if idle > day {
		e.set24.reset()
	}
	w.DistinctUsers24h = e.set24.observe(in.user[0], in.hasUser, in.at, day)
	return w
}
