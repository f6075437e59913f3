package http_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"

	httpapi "github.com/verdict-engine/verdict/adapters/http"
	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/policies"
	"github.com/verdict-engine/verdict/signals"
	"github.com/verdict-engine/verdict/signals/redis"
	"github.com/verdict-engine/verdict/store"
	"github.com/verdict-engine/verdict/store/postgres"
)

func testDatabaseURL() string {
	if v := os.Getenv("VERDICT_TEST_DATABASE_URL"); v != "" {
		return v
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

func testRedisURL() string {
	if v := os.Getenv("VERDICT_TEST_REDIS_URL"); v != "" {
		return v
	}
	return "redis://127.0.0.1:6379/0"
}

func randomName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// proxy is a TCP proxy the test can cut, to take Postgres away mid-run and give it back.
type proxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{addr: ln.Addr().String(), target: target}
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
}

// cut closes the listener and every connection: the database is gone.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// restore listens again on the same address.
func (p *proxy) restore(t *testing.T) {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.serve(ln)
}

type prodEnv struct {
	url   string
	store *postgres.Store
	proxy *proxy
	rdb   *goredis.Client
}

// newProdEnv serves the API on a real listener with Postgres (own schema, behind a
// cuttable proxy) and Redis (own key prefix).
func newProdEnv(t *testing.T, redisURL string, sourceTimeout time.Duration) *prodEnv {
	t.Helper()
	ctx := context.Background()
	pgURL := testDatabaseURL()
	host := strings.SplitN(strings.SplitN(strings.TrimPrefix(pgURL, "postgres://"), "@", 2)[1], "/", 2)[0]
	px := startProxy(t, host)
	proxied := strings.Replace(pgURL, host, px.addr, 1)
	schema := randomName("t_http_")
	st, err := postgres.Open(ctx, proxied, postgres.WithSchema(schema), postgres.WithConnectTimeout(time.Second))
	if err != nil {
		t.Fatalf("postgres at %s: %v (these tests need a real PostgreSQL; make test starts one)", pgURL, err)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dropper, err := postgres.Open(context.Background(), pgURL, postgres.WithSchema(schema))
		if err == nil {
			_ = dropper.DropSchema(context.Background())
			dropper.Close()
		}
	})
	opts, err := goredis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	opts.ContextTimeoutEnabled = true
	opts.DialTimeout = 200 * time.Millisecond
	rdb := goredis.NewClient(opts)
	prefix := randomName("t_http_") + ":"
	vel, err := redis.New(rdb, redis.WithPrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		keys, _ := rdb.Keys(context.Background(), prefix+"*").Result()
		if len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
		rdb.Close()
	})
	set, err := engine.Load(policies.Bundle())
	if err != nil {
		t.Fatal(err)
	}
	lists, err := signals.NewLists(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	gc := store.NewGroupCommitter(st, store.WithPipeline(2))
	srv := httpapi.New(httpapi.Config{Dev: true, DecideTimeout: 5 * time.Second},
		// Evaluations get 2 s, not 50 ms: 64 concurrent requests under the race detector on a
		// loaded host would otherwise fail some by the clock (POLICY_ERROR), which is not what
		// these tests are about.
		httpapi.Deps{Engine: engine.New(set, engine.WithEvalTimeout(2*time.Second)), Gatherer: signals.NewGatherer(vel, lists, st, signals.WithSourceTimeout(sourceTimeout)),
			Lists: lists, Store: st, Committer: gc, Registry: prometheus.NewRegistry()})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.App().Listener(ln)
	t.Cleanup(func() {
		_ = srv.App().Shutdown()
		_ = gc.Close(context.Background())
		st.Close()
	})
	return &prodEnv{url: "http://" + ln.Addr().String(), store: st, proxy: px, rdb: rdb}
}

func (p *prodEnv) post(body string) (map[string]any, int, error) {
	res, err := http.Post(p.url+"/v1/decide", "application/json", strings.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	defer res.Body.Close()
	var m map[string]any
	err = json.NewDecoder(res.Body).Decode(&m)
	return m, res.StatusCode, err
}

// TestConcurrentDecisionsCountExactly: 1,000 concurrent decisions for one user see the
// counts 1..1,000 exactly once each (no lost increment in Redis), every one is stored in
// Postgres, and the audit chain verifies afterwards.
func TestConcurrentDecisionsCountExactly(t *testing.T) {
	e := newProdEnv(t, testRedisURL(), 3*time.Second)
	const n = 1000
	body := `{"action":"login","subject":{"id":"user-hot"},"device":{"id":"dev-hot"},"context":{"ip":"198.51.100.9"}}`
	ids := make(chan string, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			d, status, err := e.post(body)
			if err != nil || status != 200 {
				t.Errorf("decide: %d %v %v", status, err, d)
				return
			}
			if d["degraded"] != nil {
				t.Errorf("degraded answer under load: %v", d["degraded"])
			}
			ids <- d["decision_id"].(string)
		}()
	}
	wg.Wait()
	close(ids)
	ctx := context.Background()
	var counts []int
	for id := range ids {
		rec, err := e.store.GetDecision(ctx, id)
		if err != nil {
			t.Fatalf("acknowledged decision %s not stored: %v", id, err)
		}
		var in engine.Input
		if err := json.Unmarshal(rec.Input, &in); err != nil {
			t.Fatal(err)
		}
		counts = append(counts, int(in.Signals.Velocity.User.Count1m))
	}
	slices.Sort(counts)
	if len(counts) != n {
		t.Fatalf("%d decisions stored, want %d", len(counts), n)
	}
	for i, c := range counts {
		if c != i+1 {
			t.Fatalf("the policy saw count %d at position %d: increments lost or doubled (counts %v...)", c, i, counts[max(0, i-3):min(n, i+3)])
		}
	}
	seq, _, err := store.VerifyChain(ctx, e.store)
	if err != nil {
		t.Fatalf("audit chain: %v", err)
	}
	if seq != n {
		t.Fatalf("audit head at %d, want %d events", seq, n)
	}
}

// TestPostgresOutageLosesNothingAcknowledged cuts Postgres while decisions flow: answers
// during the outage follow the action's fail mode and say they were not stored; every
// answer that did not say so is in the database afterwards.
func TestPostgresOutageLosesNothingAcknowledged(t *testing.T) {
	e := newProdEnv(t, testRedisURL(), 3*time.Second)
	body := func(i int) string {
		return fmt.Sprintf(`{"action":"payout","subject":{"id":"user-%d","account_age_days":400},"device":{"id":"dev-%d"},"context":{"ip":"198.51.100.7","amount":50,"payout_method":"bank"}}`, i, i)
	}
	var mu sync.Mutex
	var acked []string
	var unstored, blockedUnstored int
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w * 100000; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				d, status, err := e.post(body(i))
				if err != nil || status != 200 {
					t.Errorf("decide: %d %v", status, err)
					return
				}
				mu.Lock()
				if deg, _ := d["degraded"].(map[string]any); deg != nil && deg["stored"] == false {
					unstored++
					if d["outcome"] == "block" && slices.Contains(codesOf(d), engine.CauseStoreUnavailable) {
						blockedUnstored++
					}
				} else {
					acked = append(acked, d["decision_id"].(string))
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(400 * time.Millisecond)
	e.proxy.cut()
	time.Sleep(600 * time.Millisecond)
	e.proxy.restore(t)
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()

	if unstored == 0 {
		t.Fatal("no decision saw the outage; the test did not cut Postgres")
	}
	if blockedUnstored != unstored {
		t.Fatalf("%d unstored payouts, only %d blocked with %s (payout fails closed)", unstored, blockedUnstored, engine.CauseStoreUnavailable)
	}
	ctx := context.Background()
	for _, id := range acked {
		if _, err := e.store.GetDecision(ctx, id); err != nil {
			t.Fatalf("acknowledged decision %s is missing after the outage: %v", id, err)
		}
	}
	if _, _, err := store.VerifyChain(ctx, e.store); err != nil {
		t.Fatalf("audit chain after outage: %v", err)
	}
	t.Logf("%d acknowledged and stored, %d answered unstored (fail closed) during the outage", len(acked), unstored)
}

func codesOf(d map[string]any) []string {
	var out []string
	for _, r := range d["reasons"].([]any) {
		out = append(out, r.(map[string]any)["code"].(string))
	}
	return out
}

// TestRedisDownFollowsFailMode points velocity at a dead Redis: login goes to review,
// payout is blocked, both within the deadline, and both say which source was missing.
func TestRedisDownFollowsFailMode(t *testing.T) {
	e := newProdEnv(t, "redis://127.0.0.1:1/0", 50*time.Millisecond)
	for _, tc := range []struct{ body, want string }{
		{`{"action":"login","subject":{"id":"u1"},"device":{"id":"d1"},"context":{"ip":"198.51.100.1"}}`, "review"},
		{`{"action":"payout","subject":{"id":"u1","account_age_days":400},"device":{"id":"d1"},"context":{"amount":20,"payout_method":"bank"}}`, "block"},
	} {
		start := time.Now()
		d, status, err := e.post(tc.body)
		if err != nil || status != 200 {
			t.Fatalf("decide: %d %v", status, err)
		}
		if el := time.Since(start); el > 300*time.Millisecond {
			t.Fatalf("took %v with Redis down", el)
		}
		if d["outcome"] != tc.want || !slices.Contains(d["signals_unavailable"].([]any), any("velocity")) {
			t.Fatalf("answer = %v, want %s with velocity unavailable", d, tc.want)
		}
		if deg := d["degraded"].(map[string]any); deg["stored"] != true {
			t.Fatalf("degraded = %v", deg)
		}
	}
}
