package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/verdict-engine/verdict/signals"
	"github.com/verdict-engine/verdict/signals/redis"
	"github.com/verdict-engine/verdict/signals/velocity"
	"github.com/verdict-engine/verdict/store"
	"github.com/verdict-engine/verdict/store/postgres"
	"github.com/verdict-engine/verdict/store/sqlite"
)

// backendConfig selects the store and velocity implementations: Postgres when
// VERDICT_DATABASE_URL is set, else the embedded store in the data directory; Redis when
// VERDICT_REDIS_URL is set, else in-process counters.
type backendConfig struct {
	dataDir     string
	databaseURL string
	redisURL    string
	migrate     bool
	// flags is the command's flag set, kept by backendFlags: its name and output say which
	// command opened which store (announceStore), and it knows whether --data-dir was given.
	flags *flag.FlagSet
}

// dataDirBeyondStore lists the commands that use the data directory with Postgres too: for
// the key files (master.key, pseudonym.key) and the local evidence bucket.
var dataDirBeyondStore = map[string]bool{"serve": true, "seed": true, "erase": true, "keys rotate": true, "retention run": true}

// command is the command's name ("audit verify"), or "" without a flag set.
func (c backendConfig) command() string {
	if c.flags == nil {
		return ""
	}
	return strings.TrimPrefix(c.flags.Name(), "verdict ")
}

// dataDirGiven reports whether --data-dir was on the command line (VERDICT_DATA_DIR is not:
// a deployment's environment may well set both).
func (c backendConfig) dataDirGiven() bool {
	given := false
	if c.flags != nil {
		c.flags.Visit(func(f *flag.Flag) { given = given || f.Name == "data-dir" })
	}
	return given
}

// checkDataDirFlag refuses an explicit --data-dir with VERDICT_DATABASE_URL set for a command
// that uses the data directory only for the embedded store: the store is Postgres, and the
// command would act on it (verify it, report on it) while the operator named a directory.
// The commands in dataDirBeyondStore still read key files or evidence there, so for them the
// flag is meaningful and announceStore says what it is used for.
func (c backendConfig) checkDataDirFlag() error {
	if c.databaseURL == "" || !c.dataDirGiven() || dataDirBeyondStore[c.command()] {
		return nil
	}
	return usageError{msg: fmt.Sprintf("--data-dir %s names an embedded store, but VERDICT_DATABASE_URL is set, so the store is Postgres: "+
		"unset VERDICT_DATABASE_URL to use the embedded store, or drop --data-dir to use Postgres", c.dataDir)}
}

// announceStore says on the command's output for errors (stderr) which store it opened,
// "verdict: audit verify: store: postgres 127.0.0.1:5432/verdict schema public", before the
// command acts on it: an operator with VERDICT_DATABASE_URL left set in the shell sees that
// it is not the data directory. The DSN's password is never printed.
func announceStore(c backendConfig, st *openedStore) {
	if c.flags == nil {
		return
	}
	line := st.where
	if c.databaseURL != "" && c.dataDirGiven() {
		line += fmt.Sprintf(" (--data-dir %s is used for key files and local evidence only)", c.dataDir)
	}
	fmt.Fprintf(c.flags.Output(), "verdict: %s: store: %s\n", c.command(), line)
}

type openedStore struct {
	store.Store
	kind string
	// where names the store: "embedded /path/verdict.db" or Postgres's Describe.
	where string
	// migrate applies the schema (Postgres) and says from which version to which; nil
	// for the embedded store, which migrates itself when opened.
	migrate func(context.Context) (from, to int, err error)
}

// openStore opens the configured store. Postgres is migrated only when cfg.migrate.
func openStore(ctx context.Context, cfg backendConfig) (*openedStore, error) {
	if cfg.databaseURL == "" {
		st, err := sqlite.Open(ctx, cfg.dataDir)
		if err != nil {
			return nil, fmt.Errorf("open embedded store in %s: %w", cfg.dataDir, err)
		}
		abs, err := filepath.Abs(st.Path())
		if err != nil {
			abs = st.Path()
		}
		return &openedStore{Store: st, kind: "embedded (" + st.Path() + ")", where: "embedded " + abs}, nil
	}
	st, err := postgres.Open(ctx, cfg.databaseURL, postgres.WithConnectTimeout(5*time.Second), postgres.WithMaxConns(16))
	if err != nil {
		return nil, err // it says "open postgres store: ..."
	}
	where, err := st.Describe(ctx)
	if err != nil {
		st.Close()
		return nil, err
	}
	o := &openedStore{Store: st, kind: "postgres", where: where, migrate: st.MigrateVersions}
	if cfg.migrate {
		// With nothing to apply, --migrate changes nothing: a server run as the application
		// role (a member of verdict_app, without CREATE on the schema) may keep
		// VERDICT_MIGRATE=1 while a migration job run as the owner does the migrating.
		// Migrating would fail there even on an up-to-date schema ("permission denied for
		// schema public").
		if applied, latest, err := st.SchemaVersions(ctx); err == nil && applied >= latest {
			o.kind = "postgres (" + migrated(applied, applied) + ")"
			return o, nil
		}
		from, to, err := st.MigrateVersions(ctx)
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("migrate postgres: %w", err)
		}
		o.kind = "postgres (" + migrated(from, to) + ")"
	}
	return o, nil
}

// openExistingStore opens the configured store for a command that reads or maintains what a
// server stored (audit, erase, keys, labels, policy, retention, backtest, golden). Unlike
// openStore it creates nothing: a data directory without a store, most likely a mistyped
// --data-dir or a missing VERDICT_DATABASE_URL, would otherwise be created empty and the
// command would report on it ("audit chain ok: 0 events"). A Postgres schema older than this
// binary's migrations is refused the same way serve refuses it.
func openExistingStore(ctx context.Context, cfg backendConfig) (*openedStore, error) {
	if err := cfg.checkDataDirFlag(); err != nil {
		return nil, err
	}
	if cfg.databaseURL == "" {
		ok, path, err := sqlite.Exists(cfg.dataDir)
		if err != nil {
			return nil, fmt.Errorf("open embedded store: %w", err)
		}
		if !ok {
			return nil, fmt.Errorf("no embedded store at %s: give the --data-dir (VERDICT_DATA_DIR) verdict serve uses, or set VERDICT_DATABASE_URL", path)
		}
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if pg, ok := st.Store.(*postgres.Store); ok && !cfg.migrate {
		if err := schemaBehind(ctx, pg); err != nil {
			st.Close()
			return nil, err
		}
	}
	announceStore(cfg, st)
	return st, nil
}

// schemaBehind returns an error naming both versions when the Postgres schema is older than
// this binary's migrations. Old binaries run on a newer schema (migrations only add), so a
// rolling upgrade migrates first; a new binary on an old schema would fail query by query.
func schemaBehind(ctx context.Context, pg *postgres.Store) error {
	applied, latest, err := pg.SchemaVersions(ctx)
	if err != nil {
		return err
	}
	if applied >= latest {
		return nil
	}
	at := strconv.Itoa(applied)
	if applied == 0 {
		at += " (no verdict tables: is the search_path of VERDICT_DATABASE_URL this schema?)"
	}
	return fmt.Errorf("the database schema is at version %s and this verdict needs %d: run `verdict migrate` first", at, latest)
}

// openVelocity returns the configured velocity counters and a close function.
func openVelocity(ctx context.Context, cfg backendConfig) (signals.Velocity, string, func(), error) {
	if cfg.redisURL == "" {
		return velocity.NewMemory(), "in-process", func() {}, nil
	}
	opts, err := redisOptions(cfg.redisURL)
	if err != nil {
		return nil, "", nil, err
	}
	client := goredis.NewClient(opts)
	v, err := redis.New(client)
	if err != nil {
		client.Close()
		return nil, "", nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	kind := "redis"
	if err := v.Load(pctx); err != nil {
		// Redis answered, and refused: a setting (the database number, ACLs, a server
		// without scripting) that waiting will not fix.
		var reply goredis.Error
		if errors.As(err, &reply) && !transientRedisReply(reply.Error()) {
			client.Close()
			return nil, "", nil, fmt.Errorf("VERDICT_REDIS_URL: redis refused: %v", reply)
		}
		// Unreachable: start anyway; decisions follow their fail mode until Redis answers.
		kind = "redis (unreachable at start: " + err.Error() + ")"
	}
	return v, kind, func() { client.Close() }, nil
}

// migrated says what a migration did, as "schema version 10, migrated from 0" or "schema
// version 10, up to date".
func migrated(from, to int) string {
	if from == to {
		return fmt.Sprintf("schema version %d, up to date", to)
	}
	return fmt.Sprintf("schema version %d, migrated from %d", to, from)
}

// redisOptions parses VERDICT_REDIS_URL into client options for the decision path, where
// a call has the velocity source's timeout (50 ms by default) and a failure costs one
// decision its counts, not an error. Options the URL sets (protocol, dial_timeout,
// read_timeout, write_timeout, max_retries, min_retry_backoff, max_retry_backoff) are kept.
func redisOptions(url string) (*goredis.Options, error) {
	opts, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("VERDICT_REDIS_URL: %v", err)
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 2 * time.Second
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = 100 * time.Millisecond
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = 100 * time.Millisecond
	}
	opts.ContextTimeoutEnabled = true
	if opts.Protocol == 0 {
		// RESP2 unless the URL asks otherwise (?protocol=3): velocity needs no push
		// notifications, and under RESP3 the client looks for one before every reply
		// (1.75 % of Verdict's CPU with Redis and Postgres at saturation).
		opts.Protocol = 2
	}
	// One immediate retry of a command and one attempt per dial, not go-redis's three
	// retries with 10 ms to 1 s of backoff between them and five dials with backoff. The
	// retry covers a pooled connection Redis closed (a restart, a failover): the call goes
	// again on a fresh one. With Redis down, the defaults slept out the whole source timeout
	// in backoff, so every decision took 50 ms longer (p50 57 ms instead of 4 ms at 1,000/s);
	// now a call fails after two refused dials, and once the pool has counted PoolSize of
	// them it fails at once until its background dial succeeds.
	if opts.MaxRetries == 0 {
		opts.MaxRetries = 1
	}
	if opts.MinRetryBackoff == 0 {
		opts.MinRetryBackoff = -1 // none
	}
	if opts.MaxRetryBackoff == 0 {
		opts.MaxRetryBackoff = -1
	}
	if opts.DialerRetries == 0 {
		opts.DialerRetries = 1
	}
	return opts, nil
}

// redisLogger writes go-redis's own messages to the server's log: dial failures while Redis
// is down, a burst as its pool gives up and then a few a second.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Warn("redis client", "detail", fmt.Sprintf(format, v...))
}

// backendFlags registers the flags that select backends.
func backendFlags(fs *flag.FlagSet, c *backendConfig, getenv func(string) string) {
	fs.StringVar(&c.dataDir, "data-dir", envOr(getenv, "VERDICT_DATA_DIR", "./data"), "embedded store directory, used when no database URL is set [VERDICT_DATA_DIR]")
	c.databaseURL = getenv("VERDICT_DATABASE_URL")
	c.redisURL = getenv("VERDICT_REDIS_URL")
	c.flags = fs
}

// transientRedisReply reports whether an error reply means "not now" rather than "never":
// a server loading its data set, busy with a script, or without a reachable master.
func transientRedisReply(msg string) bool {
	for _, p := range []string{"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}
