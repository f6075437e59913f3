// Package postgres is Verdict's production store, on PostgreSQL through pgx (pgxpool).
//
// Any number of replicas may share one database. Every write that appends to the audit
// chain moves the one-row audit_head under its row lock, which serializes appends across
// replicas and keeps the chain gapless. A batch of decisions costs one round trip and one
// fsync however many records it holds when the head is where this process last saw it
// (the database checks), and three otherwise (begin, lock and claim idempotency keys;
// insert decisions, events and head; commit). Batch decisions through store.GroupCommitter.
//
// The schema is applied by Migrate (embedded, versioned migrations). audit_events is
// partitioned by month; the store creates the partitions it needs, and the database refuses
// UPDATE, DELETE and TRUNCATE on it (see migrations/0001_init.sql and grants.sql).
package postgres

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/verdict-engine/verdict/store"
	"github.com/verdict-engine/verdict/store/internal/nosession"
)

var _ store.Store = (*Store)(nil)

// Store is the Postgres store. Its methods are safe for concurrent use.
type Store struct {
	pool   *pgxpool.Pool
	schema string
	now    func() time.Time

	partMu sync.Mutex
	// partitionedUntil is the end (Unix µs) of the months this process has ensured audit
	// partitions for.
	partitionedUntil atomic.Int64

	// head is the audit chain head as this process last saw it, for WriteDecisions' one
	// round-trip commit; the database checks it.
	head headCache
	// fastCommits and lockedCommits count decision batches written in one round trip and
	// batches that took the locking path; fastMisses counts one-round-trip attempts the
	// database refused because another writer had moved the head.
	fastCommits, lockedCommits, fastMisses atomic.Int64
	// fastSkip is how many more batches take the locking path at once, without trying the
	// one-round-trip commit; fastBackoff is what it is set to after the next miss.
	fastSkip, fastBackoff atomic.Int64

	// unverified caches users without a verification session while the listener's
	// connection listens for new ones; the listener starts with the first lookup.
	unverified *nosession.Cache
	listener   listener
	// erased is what OnSubjectKeysErased registered, nil until then.
	erased atomic.Pointer[erasureHandlers]
}

// CommitStats reports how WriteDecisions has written batches since Open: in one round trip
// (fast), the locking way (locked), and how many one-round-trip attempts were wasted
// because another replica had moved the audit head (missed). With several replicas writing
// decisions to one database, misses make the store back off from the one-round-trip
// commit for up to maxFastBackoff batches at a time.
func (s *Store) CommitStats() (fast, locked, missed int64) {
	return s.fastCommits.Load(), s.lockedCommits.Load(), s.fastMisses.Load()
}

// maxFastBackoff bounds how many batches in a row skip the one-round-trip commit after a
// miss: a replica that became the only writer gets back to it soon.
const maxFastBackoff = 64

// headCache holds the audit chain head last seen by this process: read under the head's
// lock or written by a commit. It only moves forward.
type headCache struct {
	mu    sync.Mutex
	known bool
	seq   int64
	hash  []byte
}

func (h *headCache) get() (seq int64, hash []byte, known bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seq, h.hash, h.known
}

// saw records a head read under its lock or committed; an older one is ignored. The hash
// is kept non-nil (the empty chain's head is '\x', which a nil parameter would not match).
func (h *headCache) saw(seq int64, hash []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.known && seq <= h.seq {
		return
	}
	h.known, h.seq, h.hash = true, seq, append([]byte{}, hash...)
}

type options struct {
	schema         string
	now            func() time.Time
	connectTimeout time.Duration
	maxConns       int32
}

// Option configures Open.
type Option func(*options)

// WithSchema makes every connection use schema name (and only it) as its search_path, so
// the store's tables live there; Migrate creates the schema if it is missing.
func WithSchema(name string) Option {
	return func(o *options) { o.schema = name }
}

// WithClock sets the clock that stamps audit events and fills in missing creation times
// (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}

// WithConnectTimeout bounds establishing one connection (default 5 s, or connect_timeout
// from the DSN when it sets one).
func WithConnectTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.connectTimeout = d
		}
	}
}

// WithMaxConns sets the pool size (default: pgxpool's, the larger of 4 and the CPU count).
func WithMaxConns(n int32) Option {
	return func(o *options) {
		if n > 0 {
			o.maxConns = n
		}
	}
}

// Open connects to the database at dsn (a postgres:// URL or key=value string) and checks
// that it answers. It does not change the schema: call Migrate. It returns an error wrapping
// store.ErrUnavailable when the server cannot be reached within the connect timeout or ctx,
// and a plain error for a malformed DSN.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	// The store's statements are short keyed reads and multi-row inserts whose best plan does
	// not depend on their parameters, so plan each prepared statement once. With the server's
	// default (auto), an insert from unnest($1::text[], ...) was planned again on every
	// execution (its custom plans looked cheaper than the generic one): 19 % of the Postgres
	// backends' CPU under /v1/decide load (docs/perf-notes.md). A DSN that sets
	// plan_cache_mode keeps its own.
	if _, set := cfg.ConnConfig.RuntimeParams["plan_cache_mode"]; !set {
		cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_generic_plan"
	}
	if o.schema != "" {
		cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{o.schema}.Sanitize()
	}
	switch {
	case o.connectTimeout > 0:
		cfg.ConnConfig.ConnectTimeout = o.connectTimeout
	case cfg.ConnConfig.ConnectTimeout == 0:
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	if o.maxConns > 0 {
		cfg.MaxConns = o.maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, classify(ctx, "open postgres store", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, classify(ctx, "open postgres store", err)
	}
	s := &Store{pool: pool, schema: o.schema, now: o.now, unverified: nosession.NewOff(unverifiedMaxAge)}
	s.listener.cfg, s.listener.probe = listenerConfig(cfg.ConnConfig, o.schema), defaultProbe
	s.listener.ctx, s.listener.stop = context.WithCancel(context.Background())
	return s, nil
}

// Schema returns the schema set with WithSchema, or "" for the server's default search_path.
func (s *Store) Schema() string { return s.schema }

// Describe names the database the store is connected to, as "postgres HOST:PORT/DATABASE
// schema SCHEMA", for a command to say which store it acts on. The database and schema are
// the server's answer (current_database(), current_schema()), so a search_path that names no
// existing schema shows as "schema (none)"; the DSN's password is never in it.
func (s *Store) Describe(ctx context.Context) (string, error) {
	var db string
	var schema *string
	if err := s.pool.QueryRow(ctx, `SELECT current_database(), current_schema()`).Scan(&db, &schema); err != nil {
		return "", classify(ctx, "describe postgres store", err)
	}
	sc := "(none)"
	if schema != nil {
		sc = *schema
	}
	cc := s.pool.Config().ConnConfig
	host := cc.Host
	if !strings.HasPrefix(host, "/") { // a Unix socket directory has no port of its own
		host = net.JoinHostPort(host, strconv.Itoa(int(cc.Port)))
	} else {
		host += fmt.Sprintf(" (port %d)", cc.Port)
	}
	return fmt.Sprintf("postgres %s/%s schema %s", host, db, sc), nil
}

// Ping reports whether the database answers, with an error wrapping store.ErrUnavailable
// when it does not.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return classify(ctx, "ping postgres store", err)
	}
	return nil
}

// Close stops the verification listener and closes the pool, waiting for connections in
// use to be returned. It always returns nil and may be called more than once.
func (s *Store) Close() error {
	s.listener.stop()
	s.listener.wg.Wait()
	s.pool.Close()
	return nil
}

// partitionMonths is how many monthly audit partitions, from the current one on, the store
// makes sure exist when it first writes in a month not yet covered.
const partitionMonths = 3

// ensurePartitions makes sure the audit partition for the month of t exists. It calls the
// database only when t is beyond the months this process already ensured: once after Open,
// then about every partitionMonths months.
func (s *Store) ensurePartitions(ctx context.Context, t time.Time) error {
	if t.UnixMicro() < s.partitionedUntil.Load() {
		return nil
	}
	s.partMu.Lock()
	defer s.partMu.Unlock()
	if t.UnixMicro() < s.partitionedUntil.Load() {
		return nil
	}
	if _, err := s.pool.Exec(ctx, `SELECT verdict_ensure_audit_partitions($1, $2)`, t, partitionMonths); err != nil {
		return fmt.Errorf("ensure audit partitions: %w", err)
	}
	u := t.UTC()
	month := time.Date(u.Year(), u.Month(), 1, 0, 0, 0, 0, time.UTC)
	s.partitionedUntil.Store(month.AddDate(0, partitionMonths, 0).UnixMicro())
	return nil
}

// writeTx is a transaction that holds the audit chain head.
type writeTx struct {
	s      *Store
	tx     pgx.Tx
	seq    int64
	hash   []byte
	events []store.AuditEvent // linked, not yet inserted
}

// begin begins a transaction, locks the audit head, and runs the queries queue adds (may
// be nil), all in one round trip, after making sure the audit partition for events stamped
// at is there. The caller must end it with commit or rollback.
func (s *Store) begin(ctx context.Context, at time.Time, queue func(b *pgx.Batch)) (*writeTx, error) {
	if err := s.ensurePartitions(ctx, at); err != nil {
		return nil, err
	}
	w := &writeTx{s: s}
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	b.Queue(`SELECT seq, hash FROM audit_head FOR UPDATE`).QueryRow(func(row pgx.Row) error {
		return row.Scan(&w.seq, &w.hash)
	})
	if queue != nil {
		queue(b)
	}
	br := s.pool.SendBatch(ctx, b)
	w.tx = br.Tx()
	if err := br.Close(); err != nil {
		_ = w.tx.Rollback(ctx)
		return nil, err
	}
	s.head.saw(w.seq, w.hash) // read under the lock: the current head
	return w, nil
}

// append links ev onto the chain; it is inserted by commit.
func (w *writeTx) append(ev store.AuditEvent) error {
	if err := store.LinkEvent(&ev, w.seq, w.hash); err != nil {
		return err
	}
	w.events = append(w.events, ev)
	w.seq, w.hash = ev.Seq, ev.Hash
	return nil
}

// commit runs the queries queue adds (may be nil), inserts the appended audit events and
// moves the head, in one round trip, then commits.
func (w *writeTx) commit(ctx context.Context, queue func(b *pgx.Batch)) error {
	b := &pgx.Batch{}
	if queue != nil {
		queue(b)
	}
	if len(w.events) > 0 {
		queueAuditEvents(b, w.events)
		b.Queue(`UPDATE audit_head SET seq = $1, hash = $2`, w.seq, w.hash)
	}
	if b.Len() > 0 {
		if err := w.tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
	}
	if err := w.tx.Commit(ctx); err != nil {
		return err
	}
	w.s.head.saw(w.seq, w.hash)
	return nil
}

// queueAuditEvents queues one multi-row insert of linked audit events.
func queueAuditEvents(b *pgx.Batch, events []store.AuditEvent) {
	n := len(events)
	seqs := make([]int64, n)
	times := make([]time.Time, n)
	types, actors, corrs, subjects, payloads := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	prevs, hashes := make([][]byte, n), make([][]byte, n)
	for i, ev := range events {
		seqs[i], times[i], types[i], actors[i], corrs[i], subjects[i] = ev.Seq, ev.Time, ev.Type, ev.Actor, ev.CorrelationID, ev.SubjectRef
		payloads[i], prevs[i], hashes[i] = string(ev.Payload), ev.PrevHash, ev.Hash
		if prevs[i] == nil {
			prevs[i] = []byte{}
		}
	}
	b.Queue(`INSERT INTO audit_events (seq, time, type, actor, correlation_id, subject_ref, payload, prev_hash, hash)
		SELECT seq, time, type, actor, correlation_id, subject_ref, payload::json, prev_hash, hash
		FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
			$8::bytea[], $9::bytea[])
			AS e(seq, time, type, actor, correlation_id, subject_ref, payload, prev_hash, hash)`,
		seqs, times, types, actors, corrs, subjects, payloads, prevs, hashes)
}

// rollback ends w's transaction if it is still open. Its error is of no use: after a
// commit it is pgx.ErrTxClosed, and when a rollback fails pgx closes the connection, which
// ends the transaction on the server.
func (w *writeTx) rollback(ctx context.Context) {
	_ = w.tx.Rollback(ctx)
}
