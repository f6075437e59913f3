package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/verdict-engine/verdict/store"
	"github.com/verdict-engine/verdict/store/sqlite"
	"github.com/verdict-engine/verdict/store/storetest"
)

func openDir(t *testing.T, dir string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), dir)
	if err != nil {
		t.Fatalf("open sqlite store: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t,
		func(t *testing.T) store.Store { return openDir(t, t.TempDir()) },
		storetest.WithReopen(func(t *testing.T, prev store.Store) store.Store {
			return openDir(t, filepath.Dir(prev.(*sqlite.Store).Path()))
		}),
	)
}

// rawDB opens the database file directly, as an operator with shell access would.
func rawDB(t *testing.T, s *sqlite.Store) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: s.Path()}).EscapedPath()+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func writeSome(t *testing.T, s store.Store, n int) {
	t.Helper()
	recs := make([]store.DecisionRecord, n)
	for i := range recs {
		recs[i] = store.DecisionRecord{ID: fmt.Sprintf("d%d", i), Action: "login", SubjectID: fmt.Sprintf("u%d", i),
			Outcome: "approve", Input: json.RawMessage(`{}`), Response: json.RawMessage(`{}`)}
	}
	results, err := s.WriteDecisions(t.Context(), recs)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range results {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data dir?#%")
	s := openDir(t, dir)
	for path, want := range map[string]os.FileMode{dir: 0o700, s.Path(): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode %o, want %o", path, got, want)
		}
	}
	if s.Path() != filepath.Join(dir, sqlite.FileName) {
		t.Errorf("Path = %q", s.Path())
	}
	var mode string
	db := rawDB(t, s)
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	var versions int
	if err := db.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&versions); err != nil || versions < 1 {
		t.Errorf("schema_migrations rows = %d, %v", versions, err)
	}
	// Opening again applies nothing twice.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	openDir(t, dir)
}

func TestAuditEventsAreImmutable(t *testing.T) {
	s := openDir(t, t.TempDir())
	writeSome(t, s, 3)
	db := rawDB(t, s)
	for _, q := range []string{
		`UPDATE audit_events SET payload = '{}' WHERE seq = 2`,
		`DELETE FROM audit_events WHERE seq = 3`,
		`DELETE FROM audit_events`,
	} {
		_, err := db.Exec(q)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: error = %v, want the append-only trigger to refuse", q, err)
		}
	}
	if _, _, err := store.VerifyChain(t.Context(), s); err != nil {
		t.Errorf("VerifyChain: %v", err)
	}
}

func TestTamperingIsDetected(t *testing.T) {
	s := openDir(t, t.TempDir())
	writeSome(t, s, 5)
	db := rawDB(t, s)
	// Whoever holds the file can drop the trigger; the chain still tells.
	if _, err := db.Exec(`DROP TRIGGER audit_events_no_update`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit_events SET payload = json_set(payload, '$.outcome', 'block') WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	_, _, err := store.VerifyChain(t.Context(), s)
	var broken *store.BrokenLinkError
	if !errors.As(err, &broken) || broken.Seq != 3 {
		t.Errorf("VerifyChain = %v, want a broken link at seq 3", err)
	}
}

func TestLockedDatabaseIsUnavailable(t *testing.T) {
	dir := t.TempDir()
	s, err := sqlite.Open(t.Context(), dir, sqlite.WithBusyTimeout(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Another process holds the write lock.
	db := rawDB(t, s)
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(context.Background(), `ROLLBACK`) //nolint:errcheck
	start := time.Now()
	_, err = s.WriteDecisions(t.Context(), []store.DecisionRecord{{ID: "d", Action: "a", Outcome: "o",
		Input: json.RawMessage(`{}`), Response: json.RawMessage(`{}`)}})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("WriteDecisions on a locked database = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("WriteDecisions took %v, want about the busy timeout", d)
	}
}

func TestDeadlineIsUnavailable(t *testing.T) {
	s := openDir(t, t.TempDir())
	ctx, cancel := context.WithTimeout(t.Context(), -time.Second)
	defer cancel()
	_, err := s.WriteDecisions(ctx, []store.DecisionRecord{{ID: "d", Action: "a", Outcome: "o",
		Input: json.RawMessage(`{}`), Response: json.RawMessage(`{}`)}})
	if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WriteDecisions past its deadline = %v, want ErrUnavailable and DeadlineExceeded", err)
	}
}

// A batch whose deadline passes while it is being written is written whole or not at all,
// wherever the deadline falls: before the transaction, between two of its statements, or
// at the commit. (Postgres has the one ambiguous case of every client, a commit sent whose
// answer is lost, so this stays a test of the embedded store.)
func TestDeadlineDuringABatchWritesAllOrNothing(t *testing.T) {
	s := openDir(t, t.TempDir())
	const n = 1500
	var failed, written int
	for round, timeout := range []time.Duration{time.Millisecond, 3 * time.Millisecond, 10 * time.Millisecond,
		30 * time.Millisecond, 100 * time.Millisecond, 10 * time.Second} {
		seq0, head0, err := s.AuditHead(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		recs := make([]store.DecisionRecord, n)
		for i := range recs {
			recs[i] = store.DecisionRecord{ID: fmt.Sprintf("r%d-d%d", round, i), Action: "login",
				SubjectID: fmt.Sprintf("u%d", i), Outcome: "approve",
				Input: json.RawMessage(`{"a":1}`), Response: json.RawMessage(`{}`)}
		}
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		_, err = s.WriteDecisions(ctx, recs)
		cancel()
		seq, head, herr := s.AuditHead(t.Context())
		if herr != nil {
			t.Fatal(herr)
		}
		found := 0
		for _, i := range []int{0, n / 2, n - 1} {
			switch _, gerr := s.GetDecision(t.Context(), recs[i].ID); {
			case gerr == nil:
				found++
			case !errors.Is(gerr, store.ErrNotFound):
				t.Fatal(gerr)
			}
		}
		t.Logf("timeout %v: %v", timeout, err)
		if err != nil {
			failed++
			if !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("timeout %v: WriteDecisions = %v, want ErrUnavailable", timeout, err)
			}
			if found != 0 || seq != seq0 || !bytes.Equal(head, head0) {
				t.Errorf("timeout %v: failed batch left %d of 3 sampled decisions and moved the audit head %d → %d",
					timeout, found, seq0, seq)
			}
			continue
		}
		written++
		if found != 3 || seq != seq0+n {
			t.Errorf("timeout %v: committed batch shows %d of 3 sampled decisions and audit head %d → %d, want all and +%d",
				timeout, found, seq0, seq, n)
		}
	}
	if _, _, err := store.VerifyChain(t.Context(), s); err != nil {
		t.Errorf("VerifyChain: %v", err)
	}
	if failed == 0 || written == 0 {
		t.Errorf("%d batches failed and %d were written; the timeouts should give both", failed, written)
	}
}

func TestOpenUnwritableDirIsUnavailable(t *testing.T) {
	if os.Geteuid() == 0 {
		// root ignores permissions; use a path under a regular file instead.
		f := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := sqlite.Open(t.Context(), filepath.Join(f, "sub")); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("Open under a file = %v, want ErrUnavailable", err)
		}
		return
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	if _, err := sqlite.Open(t.Context(), filepath.Join(dir, "sub")); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Open in a read-only dir = %v, want ErrUnavailable", err)
	}
}

// TestMigrationKeepsSessionsOfVersion1 opens a database left at schema version 1 with a
// session in it: migration 0002 applies, and the session reads back with the new fields
// empty.
func TestMigrationKeepsSessionsOfVersion1(t *testing.T) {
	dir := t.TempDir()
	schema1, err := os.ReadFile(filepath.Join("migrations", "0001_init.sql"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: filepath.Join(dir, sqlite.FileName)}).EscapedPath())
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		string(schema1),
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`,
		`INSERT INTO schema_migrations VALUES (1, 'init', 0)`,
		`INSERT INTO verifications (id, user_id, provider, provider_ref, status, score, reason_codes, created_at, updated_at)
			VALUES ('ver-old', 'user-old', 'onfido', 'chk-old', 'submitted', 7.5, '["DOC_OK"]', 1000000, 2000000)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("set up version 1: %v", err)
		}
	}
	db.Close()

	s := openDir(t, dir)
	got, err := s.GetVerification(t.Context(), "ver-old")
	if err != nil {
		t.Fatal(err)
	}
	want := store.Verification{ID: "ver-old", UserID: "user-old", Provider: "onfido", ProviderRef: "chk-old", Status: "submitted",
		Score: 7.5, ReasonCodes: []string{"DOC_OK"}, CreatedAt: time.UnixMicro(1000000).UTC(), UpdatedAt: time.UnixMicro(2000000).UTC()}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("session of version 1 reads as %+v, want %+v", got, want)
	}
	if _, err := s.UpdateVerification(t.Context(), "ver-old", store.VerificationChange{}, func(v *store.Verification) error {
		v.Status = store.StatusPendingReview
		return nil
	}); err != nil {
		t.Errorf("UpdateVerification of a version 1 session: %v", err)
	}
	latest := 0
	entries, err := os.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if n, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0]); err == nil && n > latest {
			latest = n
		}
	}
	var version int
	if err := rawDB(t, s).QueryRow(`SELECT MAX(version) FROM schema_migrations`).Scan(&version); err != nil || version != latest {
		t.Errorf("schema version = %d, %v; want the latest migration, %d", version, err, latest)
	}
}

// TestMigrationClosesDecidedReviewDecisions opens a database left at schema version 8, with
// one review decision a reviewer decided and one still open: migration 0009 moves the
// decided one out of the queue's index, and the queue lists the open one only.
func TestMigrationClosesDecidedReviewDecisions(t *testing.T) {
	dir := t.TempDir()
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: filepath.Join(dir, sqlite.FileName)}).EscapedPath())
	if err != nil {
		t.Fatal(err)
	}
	qs := []string{`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`}
	entries, err := os.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		n, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0])
		if err != nil || n > 8 {
			continue
		}
		b, err := os.ReadFile(filepath.Join("migrations", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		qs = append(qs, string(b), fmt.Sprintf(`INSERT INTO schema_migrations VALUES (%d, 'm', 0)`, n))
	}
	for _, id := range []string{"rev-decided", "rev-open"} {
		qs = append(qs, `INSERT INTO decisions (id, action, subject_id, outcome, score, reason_codes, policy_version, policy_hash,
			fail_mode, input, response, idempotency_key, request_hash, created_at, actor, correlation_id)
			VALUES ('`+id+`', 'login', 'u-`+id+`', 'review', 50, '["BOT_SUSPECTED"]', 'v', 'h', '', '{}', '{}', '', '', 1000000, 'a', 'c')`)
	}
	qs = append(qs, `INSERT INTO reviews (kind, item_id, decided_by, outcome, reason, decided_at)
		VALUES ('decision', 'rev-decided', 'alice', 'block', 'BOT_CONFIRMED', 2000000)`)
	for _, q := range qs {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("set up version 8: %v", err)
		}
	}
	db.Close()

	s := openDir(t, dir)
	items, err := s.ListReviews(t.Context(), 10)
	if err != nil || len(items) != 1 || items[0].ID != "rev-open" {
		t.Fatalf("review queue after migration = %+v, %v; want rev-open only", items, err)
	}
	if r, err := s.GetReviewResolution(t.Context(), store.ReviewDecision, "rev-decided"); err != nil || r.Outcome != "block" {
		t.Errorf("resolution after migration = %+v, %v", r, err)
	}
}

// TestClaimLapsesWithTheClock moves the store's clock past a claim's end.
func TestClaimLapsesWithTheClock(t *testing.T) {
	var (
		mu  sync.Mutex
		now = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, err := sqlite.Open(t.Context(), t.TempDir(), sqlite.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	storetest.RunClaimLapse(t, s, func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }, clock)
}
