package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	goredis "github.com/redis/go-redis/v9"

	httpapi "github.com/verdict-engine/verdict/adapters/http"
	"github.com/verdict-engine/verdict/adapters/retention"
	"github.com/verdict-engine/verdict/adapters/throttle"
	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/signals"
	"github.com/verdict-engine/verdict/signals/redis"
	"github.com/verdict-engine/verdict/store"
	"github.com/verdict-engine/verdict/store/postgres"
)

type serveConfig struct {
	backendConfig
	addr          string
	policiesDir   string
	policiesFrom  string // "--policies DIR" or "VERDICT_POLICIES=DIR", for errors
	dev           bool
	decideTimeout time.Duration
	sourceTimeout time.Duration
	logLevel      string
	debugAddr     string
	apiKeys       []httpapi.APIKey
	shadowRate    float64
}

func parseServe(args []string, getenv func(string) string, stderr io.Writer) (serveConfig, error) {
	var c serveConfig
	migrate, err := envBool(getenv, "VERDICT_MIGRATE")
	if err != nil {
		return c, err
	}
	dev, err := envBool(getenv, "VERDICT_DEV")
	if err != nil {
		return c, err
	}
	fs := newFlagSet("serve", stderr)
	fs.StringVar(&c.addr, "addr", envOr(getenv, "VERDICT_ADDR", ":8080"), "listen address [VERDICT_ADDR]")
	backendFlags(fs, &c.backendConfig, getenv)
	fs.BoolVar(&c.migrate, "migrate", migrate, "apply Postgres migrations before serving [VERDICT_MIGRATE]")
	fs.StringVar(&c.policiesDir, "policies", envOr(getenv, "VERDICT_POLICIES", ""), "policy bundle directory; default: the embedded bundle; SIGHUP reloads it [VERDICT_POLICIES]")
	fs.BoolVar(&c.dev, "dev", dev, "development mode: NO AUTHENTICATION, every caller is admin [VERDICT_DEV]")
	decide := fs.String("decide-timeout", envOr(getenv, "VERDICT_DECIDE_TIMEOUT", "150ms"), "overall deadline of one /v1/decide [VERDICT_DECIDE_TIMEOUT]")
	source := fs.String("source-timeout", envOr(getenv, "VERDICT_SOURCE_TIMEOUT", "50ms"), "deadline of each signal source, inside the overall one [VERDICT_SOURCE_TIMEOUT]")
	fs.StringVar(&c.debugAddr, "debug-addr", envOr(getenv, "VERDICT_DEBUG_ADDR", ""), "serve pprof on this address (e.g. 127.0.0.1:6060); off by default [VERDICT_DEBUG_ADDR]")
	fs.Float64Var(&c.shadowRate, "shadow-rate", envFloat(getenv, "VERDICT_SHADOW_RATE", httpapi.DefaultShadowRate), "live decisions per second evaluated by shadow policy versions; 0: all (costs p99) [VERDICT_SHADOW_RATE]")
	fs.StringVar(&c.logLevel, "log-level", envOr(getenv, "VERDICT_LOG_LEVEL", "info"), "debug, info, warn or error [VERDICT_LOG_LEVEL]")
	if err := parseFlags(fs, args); err != nil {
		return c, err
	}
	// A bad value is named as the operator gave it: the flag, or the environment variable
	// when the flag was not on the command line.
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	setting := func(flagName, env string) string {
		if !onCommandLine[flagName] && getenv(env) != "" {
			return env
		}
		return "--" + flagName
	}
	c.policiesFrom = policiesSetting(fs, c.policiesDir)
	if c.decideTimeout, err = positiveDuration(setting("decide-timeout", "VERDICT_DECIDE_TIMEOUT"), *decide); err != nil {
		return c, err
	}
	if c.sourceTimeout, err = positiveDuration(setting("source-timeout", "VERDICT_SOURCE_TIMEOUT"), *source); err != nil {
		return c, err
	}
	if c.sourceTimeout > c.decideTimeout {
		return c, usageError{msg: "serve: --source-timeout must not exceed --decide-timeout"}
	}
	if c.apiKeys, err = httpapi.ParseAPIKeys(getenv("VERDICT_API_KEYS")); err != nil {
		return c, usageError{msg: "serve: VERDICT_API_KEYS: " + err.Error()}
	}
	if !c.dev && len(c.apiKeys) == 0 {
		return c, usageError{msg: "serve: no API keys: set VERDICT_API_KEYS=id:secret:scope+scope,... or run with --dev for local development"}
	}
	if c.shadowRate < 0 || math.IsNaN(c.shadowRate) || math.IsInf(c.shadowRate, 0) {
		return c, usageError{msg: "serve: " + setting("shadow-rate", "VERDICT_SHADOW_RATE") + " must be a number of decisions per second, 0 or more"}
	}
	if _, err := parseLevel(c.logLevel); err != nil {
		return c, usageError{msg: "serve: " + setting("log-level", "VERDICT_LOG_LEVEL") + ": " + err.Error()}
	}
	if err := checkGOGC(getenv("GOGC")); err != nil {
		return c, err
	}
	return c, nil
}

// checkGOGC refuses a GOGC the Go runtime would ignore without a word: it reads anything but
// "off" or an integer as 100, and since GOGC is set, serve does not set its own 400 either,
// so a typo ("400%", "OFF") would run the collector four times as often as asked.
func checkGOGC(v string) error {
	if v == "" || v == "off" {
		return nil
	}
	if _, err := strconv.ParseInt(v, 10, 32); err != nil || strings.HasPrefix(v, "+") {
		return usageError{msg: fmt.Sprintf("serve: GOGC: %q is not a percentage (e.g. 400) or off", v)}
	}
	return nil
}

// envFloat returns the environment variable as a number, or def when unset or not a
// number (the flag's own parsing then reports nothing: -1 makes the check above refuse it).
func envFloat(getenv func(string) string, name string, def float64) float64 {
	v := getenv(name)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return -1
	}
	return f
}

// everyTenSeconds passes on the first of a run of errors and then at most one per 10 s,
// with the number left out since (adapters/throttle): a store that is down fails every
// lists refresh (every 2 s), and the log should say so as it does for the store's other
// failures, once per interval.
func everyTenSeconds(log func(err error, suppressed int)) func(error) {
	t := throttle.New[struct{}](10 * time.Second)
	return func(err error) {
		if ok, held := t.Allow(struct{}{}, time.Now()); ok {
			log(err, int(held))
		}
	}
}

// envBool reads a boolean environment variable: unset is false; 1, t, true (any case) and
// 0, f, false are what they say; anything else ("yes") is refused rather than read as
// false without a word.
func envBool(getenv func(string) string, name string) (bool, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, usageError{msg: fmt.Sprintf("serve: %s: %q is not a boolean (want 1 or true, 0 or false)", name, v)}
	}
	return b, nil
}

// positiveDuration parses the duration setting name (a flag, "--decide-timeout", or an
// environment variable) as a positive duration.
func positiveDuration(name, s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, usageError{msg: fmt.Sprintf("serve: %s: %q is not a positive duration (e.g. 150ms)", name, s)}
	}
	return d, nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseServe(args, getenv, stderr)
	if err != nil {
		return err
	}
	level, _ := parseLevel(cfg.logLevel)
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	if getenv("GOGC") == "" {
		// OPA allocates ~13 KB per evaluation; a higher GC target halves p99 (see
		// PERFORMANCE notes). GOMEMLIMIT, when set, still bounds memory.
		debug.SetGCPercent(400)
	}

	set, err := loadPolicies(cfg.policiesDir, cfg.policiesFrom)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	eng := engine.New(set)

	if cfg.databaseURL == "" {
		release, err := lockDataDir(cfg.dataDir)
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		defer release()
	}
	st, err := openStore(ctx, cfg.backendConfig)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer closeStore(st, log)
	if pg, ok := st.Store.(*postgres.Store); ok && !cfg.migrate {
		if err := schemaBehind(ctx, pg); err != nil {
			return fmt.Errorf("serve: %w (or serve with --migrate)", err)
		}
	}
	// go-redis reports dial failures through its own logger, as plain text on stderr;
	// they go into the server's structured log instead.
	goredis.SetLogger(redisLogger{log})
	vel, velKind, closeVel, err := openVelocity(ctx, cfg.backendConfig)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer closeVel()
	// Key files made for keys not set in the environment are written only once the store has
	// accepted the keys (below): a refused start must not leave a key file the next start
	// would read, and name, as if it were the operator's.
	var newKeyFiles []newKeyFile
	vlt, pseudonyms, err := openVaultKeys(ctx, cfg.dataDir, getenv, st, cfg.databaseURL != "", log, &newKeyFiles)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if pg, ok := st.Store.(*postgres.Store); ok {
		// Another replica's erasure drops the key from this one's sealing cache at once,
		// so keys may be cached longer while announcements are heard.
		pg.OnSubjectKeysErased(vlt.Forget, vlt.ForgetAll)
		vlt.HearErasures(pg.ErasuresHeard)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Decisions' personal data is sealed under each subject's key as batches are written.
	committer := store.NewGroupCommitter(vlt.Writer(st), store.WithLogger(log), store.WithObserver(commitMetrics(reg)))
	if pg, ok := st.Store.(*postgres.Store); ok {
		postgresCommitMetrics(reg, pg)
	}

	lists, err := signals.NewLists(ctx, st)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	if rv, ok := vel.(*redis.Velocity); ok {
		watchEvictionRisk(bg, rv, reg, log, evictionRiskEvery)
	}
	go lists.Run(bg, 2*time.Second, everyTenSeconds(func(err error, suppressed int) {
		log.Warn("lists refresh failed", "err", err, "suppressed", suppressed)
	}))

	// Against Postgres, concurrent decisions read their subjects' verifications together
	// (one query per batch instead of one per decision); the embedded store reads in
	// process, where batching would save nothing.
	var verifications signals.VerificationSource = st
	if cfg.databaseURL != "" {
		verifications = signals.NewVerificationBatcher(st, cfg.sourceTimeout)
	}
	gatherer := signals.NewGatherer(vel, lists, verifications, signals.WithSourceTimeout(cfg.sourceTimeout))
	retentionPolicies, err := retention.Load(getenv("VERDICT_RETENTION_FILE"))
	if err != nil {
		return fmt.Errorf("serve: VERDICT_RETENTION_FILE: %w", err)
	}
	ver, err := setupVerifications(ctx, cfg, getenv, st, vlt, retentionPolicies, reg, log)
	if err != nil {
		return err
	}
	defer ver.close()
	go ver.svc.RunExpiry(bg, time.Minute)
	if err := startRetention(bg, cfg.dataDir, getenv, st, retentionPolicies, log); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	policy := startPolicyLifecycle(bg, st, eng, set, cfg.shadowRate, reg, log)
	srv := httpapi.New(httpapi.Config{
		Dev: cfg.dev, APIKeys: cfg.apiKeys, DecideTimeout: cfg.decideTimeout, Logger: log,
	}, httpapi.Deps{Engine: eng, Gatherer: gatherer, Lists: lists, Store: st, Committer: committer, Registry: reg, Verifications: ver.svc, Shadow: policy.shadow,
		Vault: vlt, Pseudonyms: pseudonyms, PoliciesChanged: policy.syncNow})

	if cfg.policiesDir != "" {
		go reloadOnHUP(bg, cfg.policiesDir, set, policy.setBase(bg), log)
	}

	if cfg.debugAddr != "" {
		// Listened on before the API, so that a bad or taken address stops the start
		// instead of leaving a server without the profiler it was asked for.
		dln, err := net.Listen("tcp", cfg.debugAddr)
		if err != nil {
			return fmt.Errorf("serve: --debug-addr: %w", err)
		}
		go serveDebug(bg, dln, log)
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("serve: listen %s: %w", cfg.addr, err)
	}
	// The first server of a store records its pseudonym and master keys for the others to
	// match: last, once every setting has been checked and the address is ours, so that a
	// start that fails anyway does not tie the store to a key no server will run with.
	if err := checkPseudonymKey(ctx, pseudonyms, st, cfg.dataDir, getenv); err != nil {
		ln.Close()
		return fmt.Errorf("serve: %w", err)
	}
	if err := checkMasterKeys(ctx, vlt, st, cfg.dataDir, getenv); err != nil {
		ln.Close()
		return fmt.Errorf("serve: %w", err)
	}
	if err := writeKeyFiles(newKeyFiles); err != nil {
		ln.Close()
		return fmt.Errorf("serve: %w", err)
	}
	if cfg.dev {
		log.Warn("DEVELOPMENT MODE: authentication is OFF and every caller is admin; never expose this server")
		fmt.Fprintln(stderr, strings.Repeat("!", 78)+"\n!! verdict serve --dev: NO AUTHENTICATION. Every caller is admin. Local use only.\n"+strings.Repeat("!", 78))
	}
	// What the engine serves: the base bundle with the store's live versions synced over it.
	running := eng.Policies()
	actions := running.Actions()
	versions := make([]string, len(actions))
	for i, a := range actions {
		p, _ := running.Policy(a)
		versions[i] = a + "@" + p.Version + "(" + p.Language + ", fail " + p.FailMode.String() + ")"
	}
	log.Info("verdict serving", "addr", ln.Addr().String(), "store", st.kind, "velocity", velKind, "policies", strings.Join(versions, " "))

	errCh := make(chan error, 1)
	go func() { errCh <- srv.App().Listener(ln) }()
	select {
	case err := <-errCh:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	// Shut down in order: not ready, stop accepting and finish requests, flush the
	// committer, then close the store (deferred).
	// Each step has a budget of its own, so that one that runs out (requests held by a
	// stalled store) does not leave the next none.
	log.Info("shutting down")
	srv.Drain()
	hctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.App().ShutdownWithContext(hctx); err != nil {
		log.Error("http shutdown", "err", err)
	}
	fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	policy.stop(fctx)
	if err := committer.Close(fctx); err != nil {
		log.Error("flush decisions", "err", err)
		return fmt.Errorf("serve: flush decisions: %w", err)
	}
	log.Info("stopped")
	return nil
}

// storeCloseTimeout bounds closing the store at exit: a Postgres pool waits for every
// connection to come back, and one held by a request stalled on the database would hold
// the exit as long as the stall. Everything acknowledged is committed by then.
const storeCloseTimeout = 5 * time.Second

func closeStore(st *openedStore, log *slog.Logger) {
	done := make(chan struct{})
	go func() {
		st.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(storeCloseTimeout):
		log.Warn("the store did not close in time; exiting with connections still open", "timeout", storeCloseTimeout.String())
	}
}

// reloadOnHUP recompiles the policy directory on SIGHUP and swaps it in (as the base
// under the live versions). A bundle that fails to compile, or lacks an action the running
// one serves, is refused and the running one kept: callers of a dropped action would get
// 422 unknown_action instead of its fail mode, and payout must never fail open. Removing
// an action takes a restart.
func reloadOnHUP(ctx context.Context, dir string, running *engine.PolicySet, swap func(*engine.PolicySet), log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			set, err := reloadPolicies(dir, running)
			if err != nil {
				log.Error("policy reload refused; keeping the running policies", "err", err)
				continue
			}
			swap(set)
			running = set
			log.Info("policies reloaded", "actions", strings.Join(set.Actions(), ","))
		}
	}
}

// reloadPolicies compiles dir as the next base bundle after running: it must compile and
// keep every action running serves.
func reloadPolicies(dir string, running *engine.PolicySet) (*engine.PolicySet, error) {
	set, err := loadPolicies(dir, "")
	if err != nil {
		return nil, err
	}
	var dropped []string
	for _, a := range running.Actions() {
		if _, ok := set.Policy(a); !ok {
			dropped = append(dropped, a)
		}
	}
	if len(dropped) > 0 {
		return nil, fmt.Errorf("the bundle in %s no longer defines %s; restart to remove an action", dir, strings.Join(dropped, ", "))
	}
	return set, nil
}

// serveDebug serves the pprof handlers on their own listener, never on the API port.
func serveDebug(ctx context.Context, ln net.Listener, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	log.Info("pprof serving", "addr", ln.Addr().String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("pprof server", "err", err)
	}
}

// postgresCommitMetrics exports how the Postgres store wrote decision batches: in one round
// trip or the locking way, and how many one-round-trip attempts another replica's write
// made it waste. Misses that keep rising mean replicas share the database's write load
// (each backs off from the attempt; see postgres.Store.CommitStats). It also exports
// whether verification lookups of users without a session are served from memory, and how
// many were.
func postgresCommitMetrics(reg prometheus.Registerer, pg *postgres.Store) {
	batches := func(path string, pick func(fast, locked, missed int64) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "verdict_postgres_decision_batches_total",
			Help:        "Decision batches written to Postgres, by path: one_round_trip, or locking (first write, a key already taken, or another writer moved the audit head).",
			ConstLabels: prometheus.Labels{"path": path},
		}, func() float64 { return float64(pick(pg.CommitStats())) })
	}
	reg.MustRegister(
		batches("one_round_trip", func(f, _, _ int64) int64 { return f }),
		batches("locking", func(_, l, _ int64) int64 { return l }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "verdict_postgres_decision_batch_misses_total",
			Help: "One-round-trip decision batch commits refused because another writer had moved the audit head (then written the locking way).",
		}, func() float64 { _, _, m := pg.CommitStats(); return float64(m) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "verdict_postgres_verification_cache_live",
			Help: "1 while this process listens for new verification sessions and answers lookups of users known to have none from memory; 0 before the first lookup, while the listener reconnects, or on a database without migration 0009.",
		}, func() float64 {
			if live, _, _ := pg.VerificationCacheStats(); live {
				return 1
			}
			return 0
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "verdict_postgres_verification_lookups_total",
			Help: "Users whose latest verification session a decision looked up.",
		}, func() float64 { _, _, n := pg.VerificationCacheStats(); return float64(n) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "verdict_postgres_verification_cache_hits_total",
			Help: "Verification lookups answered from memory: users known to have no session.",
		}, func() float64 { _, h, _ := pg.VerificationCacheStats(); return float64(h) }),
	)
}

// commitMetrics registers the group commit's histograms on reg and returns the observer
// that fills them: how many decisions each durable transaction carried and how long it
// took. Together they tell whether /v1/decide's persist time is the write itself or the
// wait for the write before it.
func commitMetrics(reg prometheus.Registerer) func(int, time.Duration, error) {
	records := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "verdict_commit_batch_records", Help: "Decisions per group-commit transaction.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 9), // 1 .. 256, the largest batch
	})
	took := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "verdict_commit_duration_seconds", Help: "Time to write one group-commit transaction, by result (ok or error).",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"result"})
	reg.MustRegister(records, took)
	ok, failed := took.WithLabelValues("ok"), took.WithLabelValues("error")
	return func(n int, d time.Duration, err error) {
		records.Observe(float64(n))
		if err != nil {
			failed.Observe(d.Seconds())
			return
		}
		ok.Observe(d.Seconds())
	}
}
