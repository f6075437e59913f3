// Package nosession remembers users known to have no verification session, for the stores'
// verification lookups. It caches only absence, and orders lookups against creations with
// a generation number: a lookup that began before a session was created (or announced)
// never caches the absence afterwards.
package nosession

import (
	"sync"
	"sync/atomic"
	"time"
)

// maxUsers bounds the cache; it is emptied when full.
const maxUsers = 1 << 20

// Cache is safe for concurrent use. The zero value serves nothing until SetLive(true).
type Cache struct {
	mu     sync.Mutex
	gen    uint64
	live   bool
	maxAge time.Duration // 0: entries never age out
	born   time.Time     // when users was last emptied
	users  map[string]struct{}

	hits, lookups atomic.Int64
}

// New returns a cache that is live from the start (the caller sees every creation), whose
// entries are trusted for maxAge at most (0: for ever).
func New(maxAge time.Duration) *Cache {
	c := &Cache{maxAge: maxAge}
	c.SetLive(true, time.Now())
	return c
}

// NewOff returns a cache that serves nothing until SetLive(true).
func NewOff(maxAge time.Duration) *Cache { return &Cache{maxAge: maxAge} }

// Has reports whether user is known to have no session, and the generation a lookup that
// starts now must pass to Add.
func (c *Cache) Has(user string, now time.Time) (bool, uint64) {
	c.lookups.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live {
		return false, c.gen
	}
	if c.maxAge > 0 && now.Sub(c.born) >= c.maxAge {
		c.reset(now)
	}
	_, ok := c.users[user]
	if ok {
		c.hits.Add(1)
	}
	return ok, c.gen
}

// Add caches user's absence as seen by a lookup that started at generation gen.
func (c *Cache) Add(user string, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live || gen != c.gen {
		return // not live, or a session may have been created meanwhile
	}
	if c.users == nil || len(c.users) >= maxUsers {
		c.users = make(map[string]struct{})
	}
	c.users[user] = struct{}{}
}

// Forget drops user after a session of theirs may have been created.
func (c *Cache) Forget(user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.users, user)
}

// ForgetAll drops every user.
func (c *Cache) ForgetAll(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reset(now)
}

// SetLive empties the cache and starts (live) or stops serving from it.
func (c *Cache) SetLive(live bool, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live = live
	c.reset(now)
}

func (c *Cache) reset(now time.Time) {
	c.gen++
	c.born = now
	c.users = make(map[string]struct{})
}

// Live reports whether the cache serves lookups.
func (c *Cache) Live() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.live
}

// Stats reports how many lookups Has answered from the cache, out of how many.
func (c *Cache) Stats() (hits, lookups int64) { return c.hits.Load(), c.lookups.Load() }
