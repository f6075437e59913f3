package postgres

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// unverified remembers users known to have no verification session, so that the
// verification signal of a decision for such a user (most logins, and every decision of a
// user who never went through KYC) costs no query. It caches only absence: a user with a
// session is read every time.
//
// Sessions can be created by any replica, so the cache is only used while this process
// is listening on channel verdict_verification, where the database announces every new
// session's user when its transaction commits (migration 0009's trigger):
//   - a notification forgets that user; CreateVerification in this process forgets its
//     user as soon as its transaction is over, without waiting for the round trip;
//   - gen orders a lookup against a creation that raced with it: a lookup that began
//     before a notification or a local creation never caches the absence afterwards;
//   - while the listener is down, or before it has checked that the trigger exists (a
//     database not yet migrated), nothing is cached or served, and the cache is emptied
//     whenever listening (re)starts, since creations in between went unheard;
//   - whatever happens to the listener, the cache is emptied every maxAge, which bounds how
//     long a failure nobody noticed (a connection that died silently) can leave a user
//     looking unverified. A stale entry gives the signal "no session", the stricter
//     answer, never a session that does not exist.
type unverified struct {
	mu      sync.Mutex
	gen     uint64
	live    bool
	born    time.Time // when users was last emptied
	users   map[string]struct{}
	hits    atomic.Int64
	lookups atomic.Int64
}

const (
	// unverifiedMax bounds the cache; it is emptied when full.
	unverifiedMax = 1 << 20
	// unverifiedMaxAge bounds how long any entry is trusted.
	unverifiedMaxAge = time.Minute
)

// has reports whether user is known to have no session, and the generation a lookup made
// now should pass to add.
func (u *unverified) has(user string, now time.Time) (bool, uint64) {
	u.lookups.Add(1)
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.live {
		return false, u.gen
	}
	if now.Sub(u.born) >= unverifiedMaxAge {
		u.reset(now)
	}
	_, ok := u.users[user]
	if ok {
		u.hits.Add(1)
	}
	return ok, u.gen
}

// add caches user's absence as seen by a lookup that started at generation gen.
func (u *unverified) add(user string, gen uint64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.live || gen != u.gen {
		return // not listening, or a session may have been created meanwhile
	}
	if len(u.users) >= unverifiedMax {
		u.users = make(map[string]struct{})
	}
	u.users[user] = struct{}{}
}

// forget drops user after a session of theirs may have been created.
func (u *unverified) forget(user string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.gen++
	delete(u.users, user)
}

// setLive empties the cache and starts (live) or stops serving from it.
func (u *unverified) setLive(live bool, now time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.live = live
	u.reset(now)
}

func (u *unverified) reset(now time.Time) {
	u.gen++
	u.born = now
	u.users = make(map[string]struct{})
}

func (u *unverified) isLive() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.live
}

// VerificationCacheStats reports whether the cache of users without a verification session
// is in use (this process is listening for new sessions), and how many verification
// lookups it has answered since Open out of how many were made.
func (s *Store) VerificationCacheStats() (live bool, hits, lookups int64) {
	return s.unverified.isLive(), s.unverified.hits.Load(), s.unverified.lookups.Load()
}

// notifyChannel is where migration 0009's trigger announces new sessions.
const notifyChannel = "verdict_verification"

// errNoTrigger stops the listener from enabling the cache on a database whose
// verifications table does not announce new sessions (not migrated yet).
var errNoTrigger = errors.New("verifications_notify trigger missing: run verdict migrate")

// startListener starts, once, the goroutine that keeps the cache's listening connection.
// It runs until Close.
func (s *Store) startListener() {
	s.listenOnce.Do(func() {
		s.listenWG.Add(1)
		go func() {
			defer s.listenWG.Done()
			s.listen(s.listenCtx)
		}()
	})
}

// listen keeps one connection listening on notifyChannel, reconnecting with backoff (100
// ms doubling to 5 s) when it fails; the cache is off between a failure and the next
// successful start.
func (s *Store) listen(ctx context.Context) {
	const minBackoff, maxBackoff = 100 * time.Millisecond, 5 * time.Second
	backoff := minBackoff
	for {
		started, _ := s.listenUntilFailure(ctx)
		s.unverified.setLive(false, s.now())
		if started {
			backoff = minBackoff
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// listenUntilFailure connects, listens, checks the trigger exists, turns the cache on and
// forgets each announced user until the connection fails or ctx ends. started reports
// whether the cache was turned on.
func (s *Store) listenUntilFailure(ctx context.Context) (started bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, s.listenConfig)
	if err != nil {
		return false, err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(closeCtx) //nolint:errcheck // the connection is being dropped either way
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return false, err
	}
	var hasTrigger bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_trigger
		WHERE tgname = 'verifications_notify' AND tgrelid = to_regclass('verifications'))`).Scan(&hasTrigger); err != nil {
		return false, err
	}
	if !hasTrigger {
		return false, errNoTrigger
	}
	// Listening from here on: sessions created before now are read by the next lookup of
	// their user, since the cache starts empty.
	s.unverified.setLive(true, s.now())
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, err
		}
		s.unverified.forget(n.Payload)
	}
}

// listenerConfig is the pool's connection configuration for the listening connection,
// named (with the store's schema, if set) so that operators can tell it apart in
// pg_stat_activity, with TCP keepalives
// short enough that a connection which died silently is noticed within about 20 s
// (the cache's maxAge bounds the rest).
func listenerConfig(pool *pgx.ConnConfig, schema string) *pgx.ConnConfig {
	cfg := pool.Copy()
	name := "verdict verification listener"
	if schema != "" {
		name += " " + schema
	}
	cfg.RuntimeParams["application_name"] = name
	d := &net.Dialer{KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 5 * time.Second, Interval: 5 * time.Second, Count: 3}}
	cfg.DialFunc = d.DialContext
	return cfg
}
