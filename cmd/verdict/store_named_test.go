package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/verdict-engine/verdict/store/postgres"
)

// migratedSchema returns a VERDICT_DATABASE_URL for a new, migrated schema of the test
// database, dropped when the test ends.
func migratedSchema(t *testing.T, prefix string) (dbURL, schema string) {
	t.Helper()
	ctx := context.Background()
	schema = fmt.Sprintf("%s_%d", prefix, time.Now().UnixNano())
	pg, err := postgres.Open(ctx, testDatabaseURL(), postgres.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.DropSchema(context.Background()); pg.Close() })
	if err := pg.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return testDatabaseURL() + "&search_path=" + schema, schema
}

// The commands that act on a store say on stderr which one they opened, and an explicit
// --data-dir with VERDICT_DATABASE_URL set is refused where it would be ignored: `audit
// verify --data-dir X` verified Postgres and said "audit chain ok" about it.
func TestCommandsNameTheirStore(t *testing.T) {
	dir := storeDir(t)
	_, stderr, err := runArgs(t, nil, "audit", "verify", "--data-dir", dir)
	if want := "verdict: audit verify: store: embedded " + filepath.Join(dir, "verdict.db") + "\n"; err != nil || stderr != want {
		t.Fatalf("audit verify (embedded): %v, stderr %q, want %q", err, stderr, want)
	}

	dbURL, schema := migratedSchema(t, "t_storename")
	// A password in the URL (trust authentication ignores it) is never printed.
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), "s3cret-pw")
	env := map[string]string{"VERDICT_DATABASE_URL": u.String(), "VERDICT_DATA_DIR": dir}
	csv := filepath.Join(t.TempDir(), "labels.csv")
	os.WriteFile(csv, []byte("decision_id,label,tags\n"), 0o644)
	want := fmt.Sprintf("store: postgres %s/%s schema %s", u.Host, strings.TrimPrefix(u.Path, "/"), schema)
	for _, args := range [][]string{
		{"audit", "verify"},
		{"labels", "import", csv},
		{"retention", "run", "--dry-run"},
	} {
		// VERDICT_DATA_DIR beside VERDICT_DATABASE_URL is a deployment's environment: no error.
		_, stderr, _ := runArgs(t, env, args...)
		if !strings.Contains(stderr, "verdict: "+args[0]+" "+args[1]+": "+want+"\n") || strings.Contains(stderr, "s3cret") {
			t.Errorf("%v: stderr %q, want it to name %q (and no password)", args, stderr, want)
		}
	}
	// An explicit --data-dir that the command would ignore is a usage error.
	key := filepath.Join(t.TempDir(), "cp")
	if _, _, err := runArgs(t, nil, "audit", "keygen", "--out", key); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"audit", "verify", "--data-dir", dir},
		{"audit", "checkpoint", "--data-dir", dir, "--private-key", key + ".key"},
		{"backtest", "--data-dir", dir, "--policies", filepath.Join("..", "..", "policies", "bundle"), "--action", "payout"},
	} {
		_, _, err := runArgs(t, env, args...)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--data-dir "+dir+" names an embedded store, but VERDICT_DATABASE_URL is set") {
			t.Errorf("%v with VERDICT_DATABASE_URL: %v, want a usage error", args, err)
		}
	}
	// Erase reads key files and local evidence in the data directory: allowed, and said.
	out, stderr, err := runArgs(t, env, "erase", "--data-dir", dir, "nobody")
	if err != nil || !strings.Contains(stderr, "verdict: erase: "+want+" (--data-dir "+dir+" is used for key files and local evidence only)") {
		t.Fatalf("erase: %v, stderr %q, out %s", err, stderr, out)
	}
}

// A server run as the application role (verdict_app: no CREATE on the schema) with
// --migrate on an up-to-date schema starts: it used to fail with "permission denied for
// schema public", since migrating creates schema_migrations first.
func TestMigrateAsAppRoleOnUpToDateSchema(t *testing.T) {
	dbURL, _ := migratedSchema(t, "t_approle")
	appURL := dbURL + "&options=-crole%3Dverdict_app"
	st, err := openStore(context.Background(), backendConfig{databaseURL: appURL, migrate: true})
	if err != nil {
		t.Fatalf("open with --migrate as verdict_app on an up-to-date schema: %v", err)
	}
	defer st.Close()
	if !strings.Contains(st.kind, "up to date") {
		t.Errorf("kind %q, want it to say the schema is up to date", st.kind)
	}
	// A schema that needs migrating still needs the owner: the error says so.
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)`); err != nil {
		t.Fatal(err)
	}
	_, err = openStore(context.Background(), backendConfig{databaseURL: appURL, migrate: true})
	if err == nil || !strings.Contains(err.Error(), "migrate as the role that owns it") {
		t.Fatalf("migrating as verdict_app: %v, want an error saying to migrate as the owner", err)
	}
}

// verdict migrate names the database and schema it changes, as the other commands name
// their store: it said only "postgres: schema version 11, migrated from 0".
func TestMigrateNamesItsStore(t *testing.T) {
	dbURL, schema := migratedSchema(t, "t_migname")
	_, stderr, err := runArgs(t, map[string]string{"VERDICT_DATABASE_URL": dbURL}, "migrate")
	if err != nil || !strings.Contains(stderr, "verdict: migrate: store: postgres ") || !strings.Contains(stderr, " schema "+schema+"\n") {
		t.Fatalf("migrate: %v, stderr %q, want it to name the store", err, stderr)
	}
}
