package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// The Postgres store remembers users known to have no verification session
// (nosession.Cache), so that the verification signal of a decision for such a user (most
// logins, and every decision of a user who never went through KYC) costs no query. It
// caches only absence: a user with a session is read every time.
//
// Sessions can be created by any replica, so the cache is only used while this process
// is listening on channel verdict_verification, where the database announces every new
// session's user when its transaction commits (migration 0009's trigger):
//   - a notification forgets that user; CreateVerification in this process forgets its
//     user as soon as its transaction is over, without waiting for the round trip;
//   - the cache's generation number orders a lookup against a creation that raced with
//     it: a lookup that began before a notification or a local creation never caches the
//     absence afterwards;
//   - the listener proves it hears the channel with a probe every few seconds (see
//     defaultProbe); until the first probe is heard, after any failure, and on a database
//     without the trigger (not migrated), nothing is cached or served, and the cache is
//     emptied whenever listening (re)starts, since announcements in between went unheard;
//   - whatever happens, the cache is emptied every unverifiedMaxAge.
//
// A stale entry gives the signal "no session", the stricter answer, never a session that
// does not exist.

// unverifiedMaxAge bounds how long any entry is trusted, whatever happens.
const unverifiedMaxAge = 10 * time.Minute

// VerificationCacheStats reports whether the cache of users without a verification session
// is in use (this process is listening for new sessions), and how many verification
// lookups it has answered since Open out of how many were made.
func (s *Store) VerificationCacheStats() (live bool, hits, lookups int64) {
	hits, lookups = s.unverified.Stats()
	return s.unverified.Live(), hits, lookups
}

// notifyChannel is where migration 0009's trigger announces new sessions.
const notifyChannel = "verdict_verification"

// probeConfig is when and where the listener's heartbeat probes (tests shorten and
// misdirect it).
type probeConfig struct {
	every, wait time.Duration
	channel     string
}

// The listener proves every 5 s that announcements reach it: it sends a probe on
// notifyChannel through the pool and must hear it within 5 s. A listener that does not (a
// connection that died silently, a pooler in transaction mode that does not pass
// notifications on) turns the cache off and reconnects, so an unheard announcement can
// leave a user looking unverified for about 10 s at most.
var defaultProbe = probeConfig{every: 5 * time.Second, wait: 5 * time.Second, channel: notifyChannel}

// probePrefix marks a probe's payload; user ids announced by the trigger never need it.
const probePrefix = "verdict-probe:"

// listener is the state of the goroutine that keeps the cache's listening connection.
type listener struct {
	cfg   *pgx.ConnConfig // see listenerConfig
	probe probeConfig
	once  sync.Once
	wg    sync.WaitGroup
	ctx   context.Context // ended by Close
	stop  context.CancelFunc
}

// startListener starts, once, the goroutine that keeps the cache's listening connection.
// It runs until Close.
func (s *Store) startListener() {
	s.listener.once.Do(func() {
		s.listener.wg.Add(1)
		go func() {
			defer s.listener.wg.Done()
			s.listen(s.listener.ctx)
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
		started := s.listenUntilFailure(ctx)
		s.unverified.SetLive(false, s.now())
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

// listenUntilFailure connects, listens, checks the trigger exists and forgets each
// announced user until the connection fails, a probe goes unheard or ctx ends; its
// heartbeat turns the cache on once the first probe is heard. It reports whether it did.
func (s *Store) listenUntilFailure(ctx context.Context) (started bool) {
	conn, err := pgx.ConnectConfig(ctx, s.listener.cfg)
	if err != nil {
		return false
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(closeCtx) //nolint:errcheck // the connection is being dropped either way
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel+"; LISTEN "+erasureChannel); err != nil {
		return false
	}
	// Erasures announced while no connection listened went unheard.
	if h := s.erased.Load(); h != nil {
		h.forgetAll()
	}
	var hasTrigger bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_trigger
		WHERE tgname = 'verifications_notify' AND tgrelid = to_regclass('verifications'))`).Scan(&hasTrigger); err != nil || !hasTrigger {
		return false
	}
	hbCtx, stop := context.WithCancel(ctx)
	p := probe{heard: make(chan struct{}, 1)}
	var hb sync.WaitGroup
	hb.Add(1)
	go func() {
		defer hb.Done()
		if !s.heartbeat(hbCtx, &p) {
			// Unblock WaitForNotification: the connection is no use any more.
			s.unverified.SetLive(false, s.now())
			conn.PgConn().Conn().Close() //nolint:errcheck // closing to end the wait
		}
	}()
	defer hb.Wait()
	defer stop()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return p.live.Load()
		}
		if n.Channel == erasureChannel {
			s.erasureHeard(n.Payload)
			continue
		}
		if token, ok := strings.CutPrefix(n.Payload, probePrefix); ok {
			p.hear(token) // other replicas' probes are ignored
			continue
		}
		if n.Payload == forgetEveryone {
			s.unverified.ForgetAll(s.now())
			continue
		}
		s.unverified.Forget(n.Payload)
	}
}

// erasureChannel is where EraseSubject announces, as its transaction commits, the user
// whose subject key it destroyed ('*' for a user id too long for a payload).
const erasureChannel = "verdict_subject_key_erased"

type erasureHandlers struct {
	forget    func(userID string)
	forgetAll func()
}

// OnSubjectKeysErased has forget called with the user id of every subject key erased in
// this database, by any process, soon after the erasing transaction commits, and forgetAll
// whenever announcements may have been missed: when the listening connection is (re)made, and
// for a user id too long to announce. The vault uses it to drop a destroyed key from its
// sealing cache at once instead of keeping it for up to vault.CacheTTL. It starts the
// listener if it was not running; call it once, before serving.
func (s *Store) OnSubjectKeysErased(forget func(userID string), forgetAll func()) {
	s.erased.Store(&erasureHandlers{forget: forget, forgetAll: forgetAll})
	s.startListener()
}

// ErasuresHeard reports whether erasure announcements are being delivered to the handlers
// of OnSubjectKeysErased right now: the listening connection is up and its last probe came
// back (within about 10 s of a connection that silently died, it turns false; once it
// listens again, forgetAll is called first).
func (s *Store) ErasuresHeard() bool { return s.erased.Load() != nil && s.unverified.Live() }

// erasureHeard passes an erasure announcement on to the handlers, if any.
func (s *Store) erasureHeard(payload string) {
	h := s.erased.Load()
	switch {
	case h == nil:
	case payload == forgetEveryone:
		h.forgetAll()
	default:
		h.forget(payload)
	}
}

// forgetEveryone is announced for a user id too long for a notification's payload.
const forgetEveryone = "*"

// probe is what the heartbeat and the listening loop share.
type probe struct {
	want  atomic.Pointer[string] // the token of the probe in flight
	heard chan struct{}          // signalled when it is heard
	live  atomic.Bool            // the heartbeat turned the cache on
}

func (p *probe) hear(token string) {
	if w := p.want.Load(); w != nil && *w == token {
		select {
		case p.heard <- struct{}{}:
		default:
		}
	}
}

// heartbeat sends a probe every probe.every and waits for the listener to hear it. After
// the first one heard it turns the cache on (sessions created before then are read by the
// next lookup of their user, since the cache starts empty). It returns false when a probe
// could not be sent or went unheard, true when ctx ended.
func (s *Store) heartbeat(ctx context.Context, p *probe) bool {
	for {
		var b [8]byte
		_, _ = rand.Read(b[:])
		token := hex.EncodeToString(b[:])
		p.want.Store(&token)
		if _, err := s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, s.listener.probe.channel, probePrefix+token); err != nil {
			return ctx.Err() != nil
		}
		timer := time.NewTimer(s.listener.probe.wait)
		select {
		case <-p.heard:
			timer.Stop()
		case <-timer.C:
			return false
		case <-ctx.Done():
			timer.Stop()
			return true
		}
		if !p.live.Load() {
			s.unverified.SetLive(true, s.now())
			p.live.Store(true)
		}
		select {
		case <-ctx.Done():
			return true
		case <-time.After(s.listener.probe.every):
		}
	}
}

// listenerConfig is the pool's connection configuration for the listening connection,
// named (with the store's schema, if set) so that operators can tell it apart in
// pg_stat_activity, with TCP keepalives short enough that the connection of a server that
// went away is dropped within about 20 s.
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
