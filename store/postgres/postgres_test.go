package postgres_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/verdict-engine/verdict/signals"
	"github.com/verdict-engine/verdict/store"
	"github.com/verdict-engine/verdict/store/postgres"
	"github.com/verdict-engine/verdict/store/sqlite"
	"github.com/verdict-engine/verdict/store/storetest"
)

// These tests need a real PostgreSQL server (never a mock). They fail, rather than skip,
// when it cannot be reached.
func testDSN() string {
	if v := os.Getenv("VERDICT_TEST_DATABASE_URL"); v != "" {
		return v
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// admin connects as the test DSN's role (a superuser), for creating and dropping schemas and
// for playing the attacker.
func admin(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, testDSN())
	if err != nil {
		t.Fatalf("postgres tests need a server at %s (set VERDICT_TEST_DATABASE_URL): %v", redact(testDSN()), err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil {
		return u.Redacted()
	}
	return "(dsn)"
}

// newSchema returns a fresh schema name, dropped when the test ends.
func newSchema(t testing.TB) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "t_" + hex.EncodeToString(b)
	conn := admin(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{name}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	return name
}

// openStore opens and migrates a store in schema, closed when the test ends.
func openStore(t testing.TB, schema string, opts ...postgres.Option) *postgres.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, testDSN(), append([]postgres.Option{postgres.WithSchema(schema)}, opts...)...)
	if err != nil {
		t.Fatalf("open postgres store at %s: %v", redact(testDSN()), err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t,
		func(t *testing.T) store.Store { return openStore(t, newSchema(t)) },
		storetest.WithReopen(func(t *testing.T, prev store.Store) store.Store {
			return openStore(t, prev.(*postgres.Store).Schema())
		}),
	)
}

func decisions(prefix string, n int) []store.DecisionRecord {
	recs := make([]store.DecisionRecord, n)
	for i := range recs {
		recs[i] = store.DecisionRecord{
			ID: fmt.Sprintf("%s-%d", prefix, i), Action: "login", SubjectID: fmt.Sprintf("user-%d", i), Outcome: "approve",
			Input: json.RawMessage(`{"i":` + strconv.Itoa(i) + `}`), Response: json.RawMessage(`{}`),
		}
	}
	return recs
}

func writeN(t *testing.T, s store.Store, prefix string, n int) {
	t.Helper()
	results, err := s.WriteDecisions(t.Context(), decisions(prefix, n))
	if err != nil {
		t.Fatalf("WriteDecisions: %v", err)
	}
	for _, err := range results {
		if err != nil {
			t.Fatalf("WriteDecisions: %v", err)
		}
	}
}

func table(schema, name string) string { return pgx.Identifier{schema, name}.Sanitize() }

// execAs runs q in a transaction that is rolled back, as role (empty: the connecting
// superuser) and optionally with triggers disabled, and returns its error.
func execAs(t *testing.T, conn *pgx.Conn, role string, q string) error {
	t.Helper()
	ctx := t.Context()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if role != "" {
		if _, err := tx.Exec(ctx, `SET LOCAL ROLE `+pgx.Identifier{role}.Sanitize()); err != nil {
			t.Fatal(err)
		}
	}
	_, err = tx.Exec(ctx, q)
	return err
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

func TestAuditEventsRefuseChangesInTheDatabase(t *testing.T) {
	schema := newSchema(t)
	s := openStore(t, schema)
	writeN(t, s, "imm", 3)
	conn := admin(t)
	events := table(schema, "audit_events")
	var partition string
	if err := conn.QueryRow(t.Context(), `SELECT inhrelid::regclass::text FROM pg_inherits
		WHERE inhparent = $1::regclass ORDER BY 1 LIMIT 1`, events).Scan(&partition); err != nil {
		t.Fatalf("find an audit partition: %v", err)
	}
	changes := []string{
		`UPDATE ` + events + ` SET payload = '{}' WHERE seq = 2`,
		`DELETE FROM ` + events + ` WHERE seq = 3`,
		`TRUNCATE ` + events,
		`UPDATE ` + partition + ` SET actor = 'x'`,
		`DELETE FROM ` + partition,
		`TRUNCATE ` + partition,
	}

	t.Run("as verdict_app: no privilege", func(t *testing.T) {
		for _, q := range changes {
			err := execAs(t, conn, "verdict_app", q)
			if sqlState(err) != "42501" || !strings.Contains(err.Error(), "permission denied") {
				t.Errorf("%s as verdict_app: %v, want permission denied", q, err)
			}
		}
		// What the application needs is granted.
		for _, q := range []string{
			`SELECT count(*) FROM ` + events,
			`INSERT INTO ` + events + ` (seq, time, type, actor, correlation_id, subject_ref, payload, prev_hash, hash)
				VALUES (1000, now(), 't', '', '', '', '{}', '', '')`,
			`UPDATE ` + table(schema, "audit_head") + ` SET seq = seq + 1`,
			`UPDATE ` + table(schema, "decisions") + ` SET outcome = outcome`,
			`DELETE FROM ` + table(schema, "list_entries"),
		} {
			if err := execAs(t, conn, "verdict_app", q); err != nil {
				t.Errorf("%s as verdict_app: %v, want it allowed", q, err)
			}
		}
		for _, q := range []string{
			`DELETE FROM ` + table(schema, "audit_head"),
			`INSERT INTO ` + table(schema, "schema_migrations") + ` (version, name) VALUES (999, 'x')`,
		} {
			if err := execAs(t, conn, "verdict_app", q); sqlState(err) != "42501" {
				t.Errorf("%s as verdict_app: %v, want permission denied", q, err)
			}
		}
	})

	t.Run("as superuser: refused by triggers", func(t *testing.T) {
		for _, q := range append(changes,
			`DELETE FROM `+table(schema, "audit_head"),
			`UPDATE `+table(schema, "audit_head")+` SET seq = seq - 1`,
			`TRUNCATE `+table(schema, "audit_head"),
		) {
			err := execAs(t, conn, "", q)
			if err == nil || (!strings.Contains(err.Error(), "append-only") && !strings.Contains(err.Error(), "only moves forward")) {
				t.Errorf("%s as superuser: %v, want a trigger to refuse", q, err)
			}
		}
	})

	if _, _, err := store.VerifyChain(t.Context(), s); err != nil {
		t.Errorf("VerifyChain after refused changes: %v", err)
	}
}

// tamper runs statements with triggers disabled, as a superuser can.
func tamper(t *testing.T, conn *pgx.Conn, stmts ...func(tx pgx.Tx) error) {
	t.Helper()
	ctx := t.Context()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
		t.Fatal(err)
	}
	for _, st := range stmts {
		if err := st(tx); err != nil {
			t.Fatalf("tamper: %v", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestTamperingWithTriggersDisabledIsDetected(t *testing.T) {
	schema := newSchema(t)
	s := openStore(t, schema)
	writeN(t, s, "tamper", 10)
	conn := admin(t)
	tamper(t, conn, func(tx pgx.Tx) error {
		_, err := tx.Exec(t.Context(), `UPDATE `+table(schema, "audit_events")+
			` SET payload = '{"decision_id":"tamper-3","outcome":"approve"}' WHERE seq = 4`)
		return err
	})
	_, _, err := store.VerifyChain(t.Context(), s)
	var broken *store.BrokenLinkError
	if !errors.As(err, &broken) || broken.Seq != 4 {
		t.Fatalf("VerifyChain = %v, want a broken link at seq 4", err)
	}
	t.Logf("detected: %v", err)
}

func TestCheckpointDetectsRollbackAndRewrite(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	// setup writes 10 decisions and signs a checkpoint at the head.
	setup := func(t *testing.T) (*postgres.Store, string, store.Checkpoint) {
		schema := newSchema(t)
		s := openStore(t, schema)
		writeN(t, s, "cp", 10)
		seq, head, err := store.VerifyChain(t.Context(), s)
		if err != nil || seq != 10 {
			t.Fatalf("VerifyChain = %d, %v", seq, err)
		}
		cp := store.SignCheckpoint(priv, seq, head, time.Now())
		if err := store.VerifyCheckpoint(t.Context(), pub, cp, s); err != nil {
			t.Fatalf("VerifyCheckpoint on the intact log: %v", err)
		}
		return s, schema, cp
	}

	t.Run("rollback", func(t *testing.T) {
		s, schema, cp := setup(t)
		evs, err := s.AuditEvents(t.Context(), 5, 1)
		if err != nil {
			t.Fatal(err)
		}
		tamper(t, admin(t), func(tx pgx.Tx) error {
			if _, err := tx.Exec(t.Context(), `DELETE FROM `+table(schema, "audit_events")+` WHERE seq > 6`); err != nil {
				return err
			}
			_, err := tx.Exec(t.Context(), `UPDATE `+table(schema, "audit_head")+` SET seq = 6, hash = $1`, evs[0].Hash)
			return err
		})
		if _, _, err := store.VerifyChain(t.Context(), s); err != nil {
			t.Fatalf("a cleanly truncated chain is self-consistent, VerifyChain = %v", err)
		}
		var broken *store.BrokenLinkError
		err = store.VerifyCheckpoint(t.Context(), pub, cp, s)
		if !errors.As(err, &broken) || broken.Seq != 10 || !strings.Contains(broken.Reason, "rolled back") {
			t.Errorf("VerifyCheckpoint = %v, want a rollback below seq 10", err)
		}
	})

	t.Run("rewrite with recomputed hashes", func(t *testing.T) {
		s, schema, cp := setup(t)
		writeN(t, s, "cp-more", 3)
		evs, err := s.AuditEvents(t.Context(), 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		// Change event 3 and recompute every hash from there, head included.
		evs[2].Payload = json.RawMessage(`{"decision_id":"forged"}`)
		for i := 2; i < len(evs); i++ {
			evs[i].PrevHash = evs[i-1].Hash
			evs[i].Hash = store.ChainHash(evs[i].PrevHash, evs[i])
		}
		tamper(t, admin(t), func(tx pgx.Tx) error {
			for _, ev := range evs[2:] {
				if _, err := tx.Exec(t.Context(), `UPDATE `+table(schema, "audit_events")+
					` SET payload = $1, prev_hash = $2, hash = $3 WHERE seq = $4`,
					string(ev.Payload), ev.PrevHash, ev.Hash, ev.Seq); err != nil {
					return err
				}
			}
			last := evs[len(evs)-1]
			_, err := tx.Exec(t.Context(), `UPDATE `+table(schema, "audit_head")+` SET hash = $1`, last.Hash)
			return err
		})
		if _, _, err := store.VerifyChain(t.Context(), s); err != nil {
			t.Fatalf("a fully rehashed chain is self-consistent, VerifyChain = %v", err)
		}
		var broken *store.BrokenLinkError
		err = store.VerifyCheckpoint(t.Context(), pub, cp, s)
		if !errors.As(err, &broken) || broken.Seq != 10 {
			t.Errorf("VerifyCheckpoint = %v, want a broken link at seq 10", err)
		}
	})
}

func TestUnreachableServerIsUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := postgres.Open(ctx, "postgres://postgres@127.0.0.1:1/test?sslmode=disable", postgres.WithConnectTimeout(2*time.Second))
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Open on a dead port = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Open on a dead port took %v", d)
	}
	if _, err := postgres.Open(ctx, "postgres://bad dsn::"); err == nil || errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Open with a malformed DSN = %v, want a configuration error", err)
	}
}

// proxy forwards TCP connections to the server until killed, to play a database that
// goes away under a running store.
type proxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	t.Cleanup(p.kill)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
	return p
}

func (p *proxy) kill() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func TestServerGoingAwayIsUnavailable(t *testing.T) {
	cfg, err := pgconn.ParseConfig(testDSN())
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))))
	u := url.URL{Scheme: "postgres", Host: p.ln.Addr().String(), Path: "/" + cfg.Database, RawQuery: "sslmode=disable"}
	if cfg.Password != "" {
		u.User = url.UserPassword(cfg.User, cfg.Password)
	} else {
		u.User = url.User(cfg.User)
	}
	schema := newSchema(t)
	ctx := t.Context()
	s, err := postgres.Open(ctx, u.String(), postgres.WithSchema(schema), postgres.WithConnectTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	writeN(t, s, "before", 2)

	p.kill()
	start := time.Now()
	_, err = s.WriteDecisions(ctx, decisions("after", 2))
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("WriteDecisions after the server went away = %v, want ErrUnavailable", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Ping after the server went away = %v, want ErrUnavailable", err)
	}
	if _, err := s.GetDecision(ctx, "before-0"); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("GetDecision after the server went away = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("failing took %v", d)
	}
}

func TestDeadlineIsUnavailable(t *testing.T) {
	s := openStore(t, newSchema(t))
	ctx, cancel := context.WithTimeout(t.Context(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	_, err := s.WriteDecisions(ctx, decisions("late", 1))
	if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WriteDecisions past its deadline = %v, want ErrUnavailable and DeadlineExceeded", err)
	}
	cctx, ccancel := context.WithCancel(t.Context())
	ccancel()
	if _, err := s.WriteDecisions(cctx, decisions("gone", 1)); errors.Is(err, store.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("WriteDecisions with a cancelled context = %v, want context.Canceled and not ErrUnavailable", err)
	}
}

func TestConcurrentMigrate(t *testing.T) {
	schema := newSchema(t)
	var wg sync.WaitGroup
	stores := make([]*postgres.Store, 4)
	for i := range stores {
		s, err := postgres.Open(t.Context(), testDSN(), postgres.WithSchema(schema))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores[i] = s
	}
	errs := make([]error, len(stores))
	for i, s := range stores {
		wg.Go(func() { errs[i] = s.Migrate(t.Context()) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Migrate %d: %v", i, err)
		}
	}
	var n, distinct int
	if err := admin(t).QueryRow(t.Context(), `SELECT count(*), count(DISTINCT version) FROM `+table(schema, "schema_migrations")).
		Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != distinct || n < 1 {
		t.Errorf("schema_migrations has %d rows for %d versions", n, distinct)
	}
	writeN(t, stores[0], "m", 1)
}

// TestMigrateVersions checks what a migration reports: from 0 to the newest embedded
// migration on a new schema, then nothing to do.
func TestMigrateVersions(t *testing.T) {
	s, err := postgres.Open(t.Context(), testDSN(), postgres.WithSchema(newSchema(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	entries, err := os.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	newest, err := strconv.Atoi(strings.SplitN(entries[len(entries)-1].Name(), "_", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	if applied, latest, err := s.SchemaVersions(t.Context()); err != nil || applied != 0 || latest != newest {
		t.Fatalf("SchemaVersions before migrating = %d, %d, %v; want 0, %d", applied, latest, err, newest)
	}
	if from, to, err := s.MigrateVersions(t.Context()); err != nil || from != 0 || to != newest {
		t.Fatalf("first migration = %d -> %d, %v; want 0 -> %d", from, to, err, newest)
	}
	if applied, latest, err := s.SchemaVersions(t.Context()); err != nil || applied != newest || latest != newest {
		t.Fatalf("SchemaVersions after migrating = %d, %d, %v; want %d, %d", applied, latest, err, newest, newest)
	}
	if from, to, err := s.MigrateVersions(t.Context()); err != nil || from != newest || to != newest {
		t.Fatalf("second migration = %d -> %d, %v; want %d -> %d", from, to, err, newest, newest)
	}
}

// TestMigrateWithoutASchema: a DSN whose search_path names no existing schema gets an error
// saying so, not only the server's "no schema has been selected to create in".
func TestMigrateWithoutASchema(t *testing.T) {
	u, err := url.Parse(testDSN())
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", "verdict_no_such_schema_"+strings.ToLower(rand.Text()))
	u.RawQuery = q.Encode()
	s, err := postgres.Open(t.Context(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, _, err := s.MigrateVersions(t.Context()); err == nil || !strings.Contains(err.Error(), "search_path exists") {
		t.Fatalf("migrate without a schema = %v, want the search_path explained", err)
	}
}

func TestAuditPartitionsFollowTheClock(t *testing.T) {
	schema := newSchema(t)
	now := time.Date(2031, 12, 31, 23, 59, 59, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := openStore(t, schema, postgres.WithClock(clock))
	writeN(t, s, "dec", 1)
	mu.Lock()
	now = now.Add(2 * time.Second) // into January 2032
	mu.Unlock()
	writeN(t, s, "jan", 1)

	conn := admin(t)
	for seq, part := range map[int]string{1: "audit_events_2031_12", 2: "audit_events_2032_01"} {
		var got string
		if err := conn.QueryRow(t.Context(), `SELECT tableoid::regclass::text FROM `+table(schema, "audit_events")+
			` WHERE seq = $1`, seq).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if want := table(schema, part); got != want && got != schema+"."+part {
			t.Errorf("event %d stored in %s, want %s", seq, got, part)
		}
	}
	// The new partition is protected like the others.
	err := execAs(t, conn, "", `TRUNCATE `+table(schema, "audit_events_2032_01"))
	if err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Errorf("TRUNCATE of a new partition = %v, want refused", err)
	}
	if _, _, err := store.VerifyChain(t.Context(), s); err != nil {
		t.Errorf("VerifyChain across partitions: %v", err)
	}
}

func TestVerificationTablesAreGrantedToTheApp(t *testing.T) {
	schema := newSchema(t)
	openStore(t, schema)
	conn := admin(t)
	for _, q := range []string{
		`INSERT INTO ` + table(schema, "verification_idempotency") + ` VALUES ('k', 'h', 'v')`,
		`UPDATE ` + table(schema, "verification_idempotency") + ` SET request_hash = 'x'`,
		`DELETE FROM ` + table(schema, "verification_idempotency"),
		`INSERT INTO ` + table(schema, "webhook_events") + ` VALUES ('p:e', 'v', now())`,
		`DELETE FROM ` + table(schema, "webhook_events"),
		`INSERT INTO ` + table(schema, "raw_payloads") + ` VALUES ('r', 'p', 'v', now(), '\x00')`,
		`DELETE FROM ` + table(schema, "raw_payloads"),
		`INSERT INTO ` + table(schema, "reviews") + ` (kind, item_id) VALUES ('decision', 'd')`,
		`UPDATE ` + table(schema, "reviews") + ` SET claimed_by = 'a'`,
		`DELETE FROM ` + table(schema, "reviews"),
		`UPDATE ` + table(schema, "verifications") + ` SET evidence = '[]', consent = NULL`,
	} {
		if err := execAs(t, conn, "verdict_app", q); err != nil {
			t.Errorf("%s as verdict_app: %v, want it allowed", q, err)
		}
	}
}

// TestMigrationKeepsSessionsOfVersion1 migrates a schema left at version 1 with a session
// in it.
func TestMigrationKeepsSessionsOfVersion1(t *testing.T) {
	schema := newSchema(t)
	schema1, err := os.ReadFile(filepath.Join("migrations", "0001_init.sql"))
	if err != nil {
		t.Fatal(err)
	}
	conn := admin(t)
	ctx := t.Context()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	for _, q := range []string{
		`CREATE SCHEMA ` + pgx.Identifier{schema}.Sanitize(),
		`SET LOCAL search_path = ` + pgx.Identifier{schema}.Sanitize(),
		string(schema1),
		`CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
		`INSERT INTO schema_migrations (version, name) VALUES (1, 'init')`,
		`INSERT INTO verifications (id, user_id, provider, provider_ref, status, score, reason_codes, created_at, updated_at)
			VALUES ('ver-old', 'user-old', 'onfido', 'chk-old', 'submitted', 7.5, '["DOC_OK"]',
			'1970-01-01 00:00:01+00', '1970-01-01 00:00:02+00')`,
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatalf("set up version 1: %v", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, schema)
	got, err := s.GetVerification(ctx, "ver-old")
	if err != nil {
		t.Fatal(err)
	}
	want := store.Verification{ID: "ver-old", UserID: "user-old", Provider: "onfido", ProviderRef: "chk-old", Status: "submitted",
		Score: 7.5, ReasonCodes: []string{"DOC_OK"}, CreatedAt: time.UnixMicro(1000000).UTC(), UpdatedAt: time.UnixMicro(2000000).UTC()}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("session of version 1 reads as %+v, want %+v", got, want)
	}
	if _, err := s.UpdateVerification(ctx, "ver-old", store.VerificationChange{}, func(v *store.Verification) error {
		v.Status = store.StatusPendingReview
		return nil
	}); err != nil {
		t.Errorf("UpdateVerification of a version 1 session: %v", err)
	}
}

// TestMigrationClosesDecidedReviewDecisions migrates a schema left at version 10, with one
// review decision a reviewer decided and one still open: migration 0011 moves the decided
// one out of the queue's index, and the queue lists the open one only.
func TestMigrationClosesDecidedReviewDecisions(t *testing.T) {
	schema := newSchema(t)
	conn := admin(t)
	ctx := t.Context()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	qs := []string{
		`CREATE SCHEMA ` + pgx.Identifier{schema}.Sanitize(),
		`SET LOCAL search_path = ` + pgx.Identifier{schema}.Sanitize(),
		`CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
	}
	entries, err := os.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		n, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0])
		if err != nil || n > 10 {
			continue
		}
		b, err := os.ReadFile(filepath.Join("migrations", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		qs = append(qs, string(b), fmt.Sprintf(`INSERT INTO schema_migrations (version, name) VALUES (%d, 'm')`, n))
	}
	for _, id := range []string{"rev-decided", "rev-open"} {
		qs = append(qs, `INSERT INTO decisions (id, action, subject_id, outcome, score, reason_codes, policy_version, policy_hash,
			fail_mode, input, response, idempotency_key, request_hash, created_at, actor, correlation_id)
			VALUES ('`+id+`', 'login', 'u-`+id+`', 'review', 50, '["BOT_SUSPECTED"]', 'v', 'h', '', '{}', '{}', '', '',
			'2026-12-01 10:00:00+00', 'a', 'c')`)
	}
	qs = append(qs, `INSERT INTO reviews (kind, item_id, decided_by, outcome, reason, decided_at)
		VALUES ('decision', 'rev-decided', 'alice', 'block', 'BOT_CONFIRMED', '2026-12-01 11:00:00+00')`)
	for _, q := range qs {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatalf("set up version 10: %v", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, schema)
	items, err := s.ListReviews(ctx, 10)
	if err != nil || len(items) != 1 || items[0].ID != "rev-open" {
		t.Fatalf("review queue after migration = %+v, %v; want rev-open only", items, err)
	}
	if r, err := s.GetReviewResolution(ctx, store.ReviewDecision, "rev-decided"); err != nil || r.Outcome != "block" {
		t.Errorf("resolution after migration = %+v, %v", r, err)
	}
}

// manualClock is a store clock that only moves when told.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *manualClock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func TestClaimLapsesWithTheClock(t *testing.T) {
	clock := &manualClock{now: time.Now().UTC().Truncate(time.Second)}
	s := openStore(t, newSchema(t), postgres.WithClock(clock.Now))
	storetest.RunClaimLapse(t, s, clock.Advance, clock.Now)
}

// TestStoresReturnEqualRecords runs the same verification and review writes, with the same
// clock, against this store and the embedded one: every record read back, and the whole
// audit chain, must be equal.
func TestStoresReturnEqualRecords(t *testing.T) {
	ctx := t.Context()
	start := time.Date(2026, 11, 2, 10, 0, 0, 987654321, time.FixedZone("X", -5*3600))
	pgClock, liteClock := &manualClock{now: start}, &manualClock{now: start}
	pg := openStore(t, newSchema(t), postgres.WithClock(pgClock.Now))
	lite, err := sqlite.Open(ctx, t.TempDir(), sqlite.WithClock(liteClock.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lite.Close() })

	at := start.Add(-time.Hour)
	run := func(s store.Store, clock *manualClock) {
		t.Helper()
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		v := store.Verification{ID: "ver-eq", UserID: "user-eq", Provider: "onfido", ProviderRef: "app-eq", Status: store.StatusInitiated,
			Score: 33.3, ReasonCodes: []string{"A", "B"}, RetentionPolicy: "kyc-5y", ExpiresAt: at.Add(48 * time.Hour),
			Evidence: []store.Evidence{{ID: "e1", Kind: "selfie", BlobKey: "k/1", SHA256: "ab", ContentType: "image/png", Size: 1,
				State: store.EvidencePending, CreatedAt: at}},
			Consent: &store.Consent{PolicyHash: "p", Locale: "fr-FR", Scope: []string{"identity_verification"}, GrantedAt: at}}
		_, _, err := s.CreateVerification(ctx, store.NewVerification{Verification: v, IdempotencyKey: "ik", RequestHash: "h", Actor: "key"})
		must(err)
		clock.Advance(time.Second + 1234*time.Nanosecond)
		_, err = s.UpdateVerification(ctx, "ver-eq", store.VerificationChange{EventKey: "onfido:1",
			Payload: &store.RawPayload{ID: "raw-eq", Provider: "onfido", ReceivedAt: at, Ciphertext: []byte{9, 8, 7}}},
			func(v *store.Verification) error {
				v.Status, v.LastEventAt = store.StatusPendingReview, at.Add(time.Minute)
				v.Evidence[0].State, v.Evidence[0].UploadedAt = store.EvidenceUploaded, at.Add(time.Minute)
				return nil
			})
		must(err)
		d := store.DecisionRecord{ID: "dec-eq", Action: "payout", SubjectID: "user-eq", Outcome: "review", Score: 33.3,
			Input: json.RawMessage(`{"a": 1}`), Response: json.RawMessage(`{}`), CreatedAt: at}
		results, err := s.WriteDecisions(ctx, []store.DecisionRecord{d})
		must(err)
		must(results[0])
		_, err = s.ClaimReview(ctx, store.ReviewDecision, "dec-eq", "alice", clock.Now().Add(time.Hour), "req")
		must(err)
		clock.Advance(time.Minute)
		_, err = s.ClaimReview(ctx, store.ReviewVerification, "ver-eq", "alice", clock.Now().Add(time.Hour), "req")
		must(err)
		must(s.ResolveReview(ctx, store.ReviewResolution{Kind: store.ReviewVerification, ID: "ver-eq", Reviewer: "alice",
			Outcome: store.StatusNeedsResubmission, Reason: "DOC_BLURRY"}))
		ev, err := store.WebhookRejectedEvent("onfido", "bad_signature", []byte("x"), "req", clock.Now())
		must(err)
		must(s.AppendAudit(ctx, ev))
	}
	run(pg, pgClock)
	run(lite, liteClock)

	type snapshot struct {
		Session store.Verification
		List    []store.Verification
		Queue   []store.ReviewItem
		Payload store.RawPayload
		Events  []store.AuditEvent
	}
	snap := func(s store.Store) snapshot {
		t.Helper()
		var sn snapshot
		var err error
		if sn.Session, err = s.GetVerification(ctx, "ver-eq"); err != nil {
			t.Fatal(err)
		}
		if sn.List, err = s.ListVerifications(ctx, "user-eq", 10); err != nil {
			t.Fatal(err)
		}
		if sn.Queue, err = s.ListReviews(ctx, 10); err != nil {
			t.Fatal(err)
		}
		if sn.Payload, err = s.RawPayload(ctx, "raw-eq"); err != nil {
			t.Fatal(err)
		}
		if sn.Events, err = s.AuditEvents(ctx, 0, 100); err != nil {
			t.Fatal(err)
		}
		return sn
	}
	a, b := snap(pg), snap(lite)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("the stores differ:\npostgres: %+v\nsqlite:   %+v", a, b)
	}
	if len(a.Events) != 11 || len(a.Queue) != 1 {
		t.Errorf("%d events, %d queued items; want 11 and 1", len(a.Events), len(a.Queue))
	}
}

// countingReads counts the batched reads that reach Postgres.
type countingReads struct {
	*postgres.Store
	reads atomic.Int64
}

func (c *countingReads) LatestVerifications(ctx context.Context, users []string) (map[string]store.Verification, error) {
	c.reads.Add(1)
	return c.Store.LatestVerifications(ctx, users)
}

// The decision path's verification lookup, batched, against a real Postgres: 400
// concurrent lookups answer exactly as LatestVerification does, in fewer queries, and a
// change committed before a lookup starts is always seen.
func TestVerificationBatcherOnPostgres(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, newSchema(t))
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Microsecond)
	for i := range 40 {
		v := store.Verification{ID: fmt.Sprintf("ver-%d", i), UserID: fmt.Sprintf("user-%d", i%20), Provider: "sandbox",
			ProviderRef: fmt.Sprintf("ref-%d", i), Status: "submitted", CreatedAt: at.Add(time.Duration(i) * time.Second),
			UpdatedAt: at.Add(time.Duration(i) * time.Second)}
		if _, created, err := s.CreateVerification(ctx, store.NewVerification{Verification: v, Actor: "key_test", CorrelationID: "req"}); err != nil || !created {
			t.Fatalf("create %s: %v", v.ID, err)
		}
	}
	src := &countingReads{Store: s}
	b := signals.NewVerificationBatcher(src, 5*time.Second)

	var wg sync.WaitGroup
	for i := range 400 {
		wg.Go(func() {
			user := fmt.Sprintf("user-%d", i%25) // users 20..24 have none
			got, err := b.LatestVerification(ctx, user)
			want, wantErr := s.LatestVerification(ctx, user)
			if !errors.Is(err, store.ErrNotFound) || !errors.Is(wantErr, store.ErrNotFound) {
				if err != nil || wantErr != nil || got.ID != want.ID || !got.UpdatedAt.Equal(want.UpdatedAt) {
					t.Errorf("%s: batched %+v, %v; alone %+v, %v", user, got, err, want, wantErr)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("400 lookups in %d queries", src.reads.Load())
	if n := src.reads.Load(); n >= 400 {
		t.Errorf("%d queries for 400 concurrent lookups: nothing was batched", n)
	}

	// Read after write: the approval is committed before the lookup starts.
	for i := range 20 {
		user := fmt.Sprintf("user-%d", i)
		want, err := s.UpdateVerification(ctx, fmt.Sprintf("ver-%d", i+20), store.VerificationChange{Actor: "key_test"}, func(v *store.Verification) error {
			v.Status = store.StatusApproved
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := b.LatestVerification(ctx, user); err != nil || got.ID != want.ID || got.Status != store.StatusApproved {
			t.Errorf("%s after approval: %+v, %v; want %s approved", user, got, err, want.ID)
		}
	}
}

// TestForgedTwinAtAPageBoundaryIsDetected: the table's key is (seq, time), so a row can be
// inserted with a sequence number already used, by the application's own role (INSERT is
// its right). VerifyChain reads 1,000 sequence numbers a page; a twin of the last one of a
// page was cut off by the page's LIMIT and never read.
func TestForgedTwinAtAPageBoundaryIsDetected(t *testing.T) {
	schema := newSchema(t)
	s := openStore(t, schema)
	writeN(t, s, "twin", 1005) // a decision appends one event
	if seq, _, err := store.VerifyChain(t.Context(), s); err != nil || seq < 1005 {
		t.Fatalf("VerifyChain before = %d, %v", seq, err)
	}
	conn := admin(t)
	if _, err := conn.Exec(t.Context(), `INSERT INTO `+table(schema, "audit_events")+
		` (seq, time, type, actor, correlation_id, subject_ref, payload, prev_hash, hash)
		SELECT seq, time + interval '1 second', type, actor, correlation_id, subject_ref, '{"forged":true}', prev_hash, hash
		FROM `+table(schema, "audit_events")+` WHERE seq = 1000`); err != nil {
		t.Fatal(err)
	}
	_, _, err := store.VerifyChain(t.Context(), s)
	var broken *store.BrokenLinkError
	if !errors.As(err, &broken) || broken.Seq != 1000 {
		t.Fatalf("VerifyChain = %v, want seq 1000 reported stored twice", err)
	}
	t.Logf("detected: %v", err)
}
