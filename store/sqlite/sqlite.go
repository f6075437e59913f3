// Package sqlite is Verdict's embedded store: one SQLite file, verdict.db, in a data
// directory, through modernc.org/sqlite (pure Go, no cgo). It needs no configuration,
// survives restarts and passes the same conformance suite (store/storetest) as the Postgres
// store.
//
// Durability: the database runs in WAL mode with synchronous=FULL, so a transaction is on
// disk when its commit returns. SQLite has one writer at a time; the store keeps a single
// write connection that begins transactions IMMEDIATE (taking the write lock up front, so a
// transaction never fails half way on a lock) and a small pool of read-only connections
// that WAL lets read while a write is in progress. Batch decisions through
// store.GroupCommitter to pay one fsync for many of them.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/verdict-engine/verdict/store"
	"github.com/verdict-engine/verdict/store/internal/nosession"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

var _ store.Store = (*Store)(nil)

// FileName is the name of the database file Open creates in its directory.
const FileName = "verdict.db"

// Exists reports whether dir holds a store (its database file), and the file's path. Open
// creates one where there is none; commands that only read or maintain a store ask first.
func Exists(dir string) (bool, string, error) {
	path := filepath.Join(dir, FileName)
	_, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, path, nil
	}
	return err == nil, path, err
}

// Store is the embedded store. Its methods are safe for concurrent use.
type Store struct {
	path string
	w    *sql.DB // exactly one connection: the writer
	r    *sql.DB // read-only connections
	now  func() time.Time

	insIdempotency *sql.Stmt
	insDecision    *sql.Stmt
	insAudit       *sql.Stmt
	selHead        *sql.Stmt
	insSubjectKey  *sql.Stmt

	// Reads on the decision path, prepared once on the readers: parsing SQL per call cost
	// a fifth of a decision's CPU.
	selLatestVerification *sql.Stmt
	selSubjectKey         *sql.Stmt
	selSubjectKeys        *sql.Stmt

	ckpt     *sql.DB // one connection that checkpoints the WAL off the commit path
	stopCkpt chan struct{}
	ckptDone chan struct{}

	// noSessions remembers users with no verification session (LatestVerification), so
	// that the verification signal of most decisions costs no read transaction (it was a
	// tenth of the embedded default's CPU per decision). Only this process creates
	// sessions in the embedded store: CreateVerification forgets its user once its
	// transaction is over. A second process creating sessions in the same file (two
	// `verdict serve` on one data directory, which is not supported) would go unseen until
	// restart; the signal would then say "none", the stricter answer.
	noSessions *nosession.Cache

	closeOnce sync.Once
	closeErr  error
}

type options struct {
	readers     int
	busyTimeout time.Duration
	now         func() time.Time
}

// Option configures Open.
type Option func(*options)

// WithReaders sets the number of read connections (default 4). Values below 1 are ignored.
func WithReaders(n int) Option {
	return func(o *options) {
		if n >= 1 {
			o.readers = n
		}
	}
}

// WithBusyTimeout sets how long a statement waits for a lock held by another process
// before failing with an error wrapping store.ErrUnavailable (default 5 s).
func WithBusyTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.busyTimeout = d
		}
	}
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

// Open opens (creating if needed) the store in dir: it creates dir (mode 0700) and
// dir/verdict.db (mode 0600), and applies pending migrations. It returns an error wrapping
// store.ErrUnavailable when the file cannot be opened or is locked beyond the busy timeout.
func Open(ctx context.Context, dir string, opts ...Option) (*Store, error) {
	o := options{readers: 4, busyTimeout: 5 * time.Second, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open sqlite store: %w: %w", store.ErrUnavailable, err)
	}
	path := filepath.Join(dir, FileName)
	// Create the file ourselves so it (and the -wal and -shm files SQLite derives from it)
	// is readable by the owner only: it holds decision inputs.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store: %w: %w", store.ErrUnavailable, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}

	s := &Store{path: path, now: o.now, noSessions: nosession.New(0)}
	busy := strconv.FormatInt(o.busyTimeout.Milliseconds(), 10)
	s.w, err = sql.Open("sqlite", dsn(path, url.Values{
		// checkpointLoop copies WAL frames into the database file in the background, so
		// the writer's own checkpoint (every 4096 pages, 16 MiB) finds little left to do;
		// it is what lets the WAL restart from its beginning under continuous writes.
		// The page cache stays at SQLite's default (2 MiB): every commit scans the cache's
		// hash table (pcache1TruncateUnsafe), and with a 64 MiB cache that scan was 4 % of
		// the server's CPU under load while the pages it kept saved almost no reads (the
		// operating system caches the file too); docs/perf-notes.md.
		"_pragma":       {"busy_timeout(" + busy + ")", "wal_autocheckpoint(4096)"},
		"_journal_mode": {"WAL"},
		"_synchronous":  {"FULL"},
		"_foreign_keys": {"1"},
		"_txlock":       {"immediate"},
	}))
	if err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	s.w.SetConnMaxIdleTime(0)

	if err := applyMigrations(ctx, s.w); err != nil {
		s.w.Close()
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}

	s.r, err = sql.Open("sqlite", dsn(path, url.Values{
		"_pragma":     {"busy_timeout(" + busy + ")"},
		"_query_only": {"1"},
	}))
	if err != nil {
		s.w.Close()
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	s.r.SetMaxOpenConns(o.readers)
	s.r.SetMaxIdleConns(o.readers)

	if err := s.prepare(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	s.ckpt, err = sql.Open("sqlite", dsn(path, url.Values{
		"_pragma":      {"busy_timeout(" + busy + ")"},
		"_synchronous": {"FULL"},
	}))
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	s.ckpt.SetMaxOpenConns(1)
	s.stopCkpt, s.ckptDone = make(chan struct{}), make(chan struct{})
	go s.checkpointLoop(checkpointInterval)
	return s, nil
}

const checkpointInterval = 250 * time.Millisecond

// checkpointLoop copies committed WAL frames into the database file in the background
// (PASSIVE: it never blocks the writer or readers), so the checkpoint the writer runs
// after a commit every 16 MiB of WAL has little left to copy and sync. Durability is
// unchanged: a commit is durable once its WAL frames are synced, checkpointed or not.
func (s *Store) checkpointLoop(every time.Duration) {
	defer close(s.ckptDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stopCkpt:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, _ = s.ckpt.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`)
			cancel()
		}
	}
}

// dsn builds a modernc.org/sqlite data source name for path. The path is escaped so that
// '?', '#' and '%' in a directory name are not read as URI syntax.
func dsn(path string, params url.Values) string {
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + params.Encode()
}

func (s *Store) prepare(ctx context.Context) error {
	for _, p := range []struct {
		stmt **sql.Stmt
		sql  string
	}{
		{&s.insIdempotency, `INSERT INTO idempotency (key, request_hash, decision_id) VALUES (?, ?, ?)
			ON CONFLICT (key) DO NOTHING`},
		{&s.insDecision, `INSERT INTO decisions (id, action, subject_id, outcome, score, reason_codes,
			policy_version, policy_hash, fail_mode, input, response, idempotency_key, request_hash,
			created_at, actor, correlation_id, pii) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&s.insAudit, `INSERT INTO audit_events (seq, time, type, actor, correlation_id, subject_ref,
			payload, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&s.selHead, `SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1`},
		{&s.insSubjectKey, `INSERT INTO subject_keys (user_id, kek_id, wrapped, created_at)
			VALUES (?, ?, ?, ?) ON CONFLICT (user_id) DO NOTHING`},
	} {
		stmt, err := s.w.PrepareContext(ctx, p.sql)
		if err != nil {
			return classify(ctx, "prepare statement", err)
		}
		*p.stmt = stmt
	}
	for _, p := range []struct {
		stmt **sql.Stmt
		sql  string
	}{
		{&s.selLatestVerification, `SELECT ` + verificationColumns + ` FROM verifications
			WHERE user_id = ? ORDER BY updated_at DESC, id DESC LIMIT 1`},
		{&s.selSubjectKey, `SELECT user_id, kek_id, wrapped, created_at FROM subject_keys WHERE user_id = ?`},
		{&s.selSubjectKeys, `SELECT user_id, kek_id, wrapped, created_at FROM subject_keys
			WHERE user_id IN (SELECT value FROM json_each(?))`},
	} {
		stmt, err := s.r.PrepareContext(ctx, p.sql)
		if err != nil {
			return classify(ctx, "prepare statement", err)
		}
		*p.stmt = stmt
	}
	return nil
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Ping reports whether the database file can be read, with an error wrapping
// store.ErrUnavailable when it cannot.
func (s *Store) Ping(ctx context.Context) error {
	var v int64
	if err := s.r.QueryRowContext(ctx, `SELECT version FROM lists_version WHERE id = 1`).Scan(&v); err != nil {
		return classify(ctx, "ping sqlite store", err)
	}
	return nil
}

// Close closes the database. Calls after the first return the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.stopCkpt != nil {
			close(s.stopCkpt)
			<-s.ckptDone
			// Leave a small WAL behind: fold it into the database file.
			_, _ = s.ckpt.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
			errs = append(errs, s.ckpt.Close())
		}
		for _, st := range []*sql.Stmt{s.insIdempotency, s.insDecision, s.insAudit, s.selHead, s.insSubjectKey, s.selLatestVerification, s.selSubjectKey, s.selSubjectKeys} {
			if st != nil {
				errs = append(errs, st.Close())
			}
		}
		if s.r != nil {
			errs = append(errs, s.r.Close())
		}
		errs = append(errs, s.w.Close())
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("close sqlite store: %w", err)
		}
	})
	return s.closeErr
}

// writeTx runs fn in one IMMEDIATE transaction on the write connection, with the audit chain
// head read inside it, and commits. Errors from fn and the driver are classified once, here.
func (s *Store) writeTx(ctx context.Context, op string, fn func(tx *sql.Tx, c *chain) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return classify(ctx, op, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	sctx := statementContext(ctx)
	c := &chain{ins: tx.StmtContext(sctx, s.insAudit)}
	var hash []byte
	switch err := tx.StmtContext(sctx, s.selHead).QueryRowContext(sctx).Scan(&c.seq, &hash); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return classify(ctx, op, err)
	}
	c.hash = hash
	if err := fn(tx, c); err != nil {
		return classify(ctx, op, err)
	}
	if err := tx.Commit(); err != nil {
		return classify(ctx, op, err)
	}
	return nil
}

// statementContext is the context for the statements of a write transaction once it has
// begun. The driver watches a cancellable context with a goroutine of its own for every
// statement (modernc.org/sqlite's interruptOnDone), which costs more than the statement
// itself (an insert into pages already in memory) and, on an idle host, a wake-up of another
// CPU each time. The transaction still ends with ctx: BEGIN IMMEDIATE, the one statement that
// waits (for the write lock), runs with ctx, and database/sql rolls the transaction back when
// ctx ends, so a statement after that fails with sql.ErrTxDone.
func statementContext(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// chain appends audit events inside a write transaction, from the head read at its start.
type chain struct {
	ins  *sql.Stmt
	seq  int64
	hash []byte
}

func (c *chain) append(ctx context.Context, ev store.AuditEvent) error {
	if err := store.LinkEvent(&ev, c.seq, c.hash); err != nil {
		return err
	}
	prev := ev.PrevHash
	if prev == nil {
		prev = []byte{}
	}
	if _, err := c.ins.ExecContext(ctx, ev.Seq, ev.Time.UnixMicro(), ev.Type, ev.Actor, ev.CorrelationID,
		ev.SubjectRef, string(ev.Payload), prev, ev.Hash); err != nil {
		return fmt.Errorf("append audit event %d: %w", ev.Seq, err)
	}
	c.seq, c.hash = ev.Seq, ev.Hash
	return nil
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }
