package redis_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"

	"github.com/verdict-engine/verdict/signals"
	"github.com/verdict-engine/verdict/signals/redis"
	"github.com/verdict-engine/verdict/signals/redis/redistest"
	"github.com/verdict-engine/verdict/signals/velocitytest"
)

// redisURL is where the tests find Redis: a real server, never a fake.
func redisURL() string {
	if u := os.Getenv("VERDICT_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// newClient connects to the test Redis and fails the test if it cannot: a test that needs
// Redis does not pass without it.
func newClient(tb testing.TB) *goredis.Client {
	tb.Helper()
	return newClientWith(tb, func(*goredis.Options) {})
}

// newClientWith is newClient with options changed by change.
func newClientWith(tb testing.TB, change func(*goredis.Options)) *goredis.Client {
	tb.Helper()
	raw := redisURL()
	shown := raw
	if u, err := url.Parse(raw); err == nil {
		shown = u.Redacted()
	}
	opt, err := goredis.ParseURL(raw)
	if err != nil {
		tb.Fatalf("VERDICT_TEST_REDIS_URL %q: %v", shown, err)
	}
	opt.ContextTimeoutEnabled = true
	change(opt)
	client := goredis.NewClient(opt)
	tb.Cleanup(func() { _ = client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		tb.Fatalf("Redis is not reachable at %s: %v\nThese tests need a real Redis 6.2+: start one (redis-server) or set VERDICT_TEST_REDIS_URL.", shown, err)
	}
	return client
}

// newVelocity returns a Velocity over client with a key prefix of its own, whose keys are
// deleted when the test ends.
func newVelocity(tb testing.TB, client *goredis.Client) (*redis.Velocity, string) {
	tb.Helper()
	prefix := "verdict-test:" + uuid.NewString() + ":"
	v, err := redis.New(client, redis.WithPrefix(prefix))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := deleteKeys(ctx, client, prefix); err != nil {
			tb.Errorf("delete test keys %s*: %v", prefix, err)
		}
	})
	return v, prefix
}

func deleteKeys(ctx context.Context, client *goredis.Client, prefix string) error {
	var cursor uint64
	for {
		keys, next, err := client.Scan(ctx, cursor, prefix+"*", 1000).Result()
		if err == nil && len(keys) > 0 {
			err = client.Unlink(ctx, keys...).Err()
		}
		if err != nil {
			return err
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

func scanKeys(ctx context.Context, client *goredis.Client, prefix string) ([]string, error) {
	var keys []string
	iter := client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	return keys, iter.Err()
}

func TestConformance(t *testing.T) {
	t.Parallel()
	client := newClient(t)
	velocitytest.Run(t, func(t *testing.T) signals.Velocity {
		v, _ := newVelocity(t, client)
		return v
	})
}

// TestKeys checks the key layout: one hash tag per entity, no IP in clear, and a TTL on
// every key so that idle counters expire by themselves.
func TestKeys(t *testing.T) {
	t.Parallel()
	client := newClient(t)
	v, prefix := newVelocity(t, client)
	ctx := context.Background()
	ev := signals.Event{ID: "k-1", Action: "payout", UserID: "user}1", DeviceID: "dev%1", IP: "203.0.113.77", At: time.Now()}
	if _, err := v.Observe(ctx, ev); err != nil {
		t.Fatal(err)
	}
	keys, err := scanKeys(ctx, client, prefix)
	if err != nil {
		t.Fatal(err)
	}
	maxTTL := map[string]time.Duration{
		"c:payout": 24 * time.Hour, "dev": 24 * time.Hour, "users": 24 * time.Hour,
		"users30": 30 * 24 * time.Hour, "first": 30 * 24 * time.Hour,
	}
	tags := map[string]int{}
	for _, k := range keys {
		if strings.Contains(k, ev.IP) {
			t.Errorf("key %q holds the IP in clear", k)
		}
		rest := strings.TrimPrefix(k, prefix)
		open, end := strings.IndexByte(rest, '{'), strings.IndexByte(rest, '}')
		if open != 0 || end < 0 || !strings.HasPrefix(rest[end+1:], ":") {
			t.Errorf("key %q: want %s{tag}:suffix", k, prefix)
			continue
		}
		tags[rest[1:end]]++
		ttl, err := client.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		limit, ok := maxTTL[rest[end+2:]]
		if !ok {
			t.Errorf("unexpected key %q", k)
		}
		if ttl <= 0 || ttl > limit {
			t.Errorf("key %q: PTTL = %v, want in (0, %v]", k, ttl, limit)
		}
	}
	want := map[string]int{"u:user%7D1": 2, "d:dev%251": 4}
	for tag, n := range tags {
		if strings.HasPrefix(tag, "ip:") {
			if len(tag) != len("ip:")+16 || n != 2 {
				t.Errorf("IP tag %q on %d keys, want 16 hex digits on 2 keys", tag, n)
			}
			continue
		}
		if want[tag] != n {
			t.Errorf("tag %q on %d keys, want %d", tag, n, want[tag])
		}
	}
	if len(keys) != 8 || len(tags) != 3 {
		t.Errorf("%d keys with %d hash tags, want 8 keys with 3: %q", len(keys), len(tags), keys)
	}
}

// countingHook counts what a client sends: each ProcessHook call is one command sent on
// its own, each ProcessPipelineHook call one pipeline (one round trip).
type countingHook struct {
	process, pipelines, pipelined atomic.Int64
}

func (h *countingHook) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h *countingHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		h.process.Add(1)
		return next(ctx, cmd)
	}
}

func (h *countingHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		h.pipelines.Add(1)
		h.pipelined.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

func (h *countingHook) reset() { h.process.Store(0); h.pipelines.Store(0); h.pipelined.Store(0) }

// TestOneRoundTrip checks that an Observe is one pipeline of one script call per entity.
func TestOneRoundTrip(t *testing.T) {
	t.Parallel()
	// One connection, dialed before counting by a first Observe: a new connection's
	// handshake (HELLO, CLIENT SETINFO) is per connection, not per Observe.
	client := newClientWith(t, func(o *goredis.Options) { o.PoolSize, o.MinIdleConns = 1, 0 })
	hook := &countingHook{}
	client.AddHook(hook)
	v, _ := newVelocity(t, client)
	ctx := context.Background()
	if err := v.Load(ctx); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	if _, err := v.Observe(ctx, signals.Event{ID: "rt-0", Action: "login", UserID: "u", At: at}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		ev   signals.Event
		cmds int64
	}{
		{"user, device and IP", signals.Event{ID: "rt-1", Action: "login", UserID: "u", DeviceID: "d", IP: "192.0.2.1", At: at}, 3},
		{"user only", signals.Event{ID: "rt-2", Action: "login", UserID: "u", At: at}, 1},
	} {
		hook.reset()
		if _, err := v.Observe(ctx, tt.ev); err != nil {
			t.Fatal(err)
		}
		if p, pl, c := hook.pipelines.Load(), hook.pipelined.Load(), hook.process.Load(); p != 1 || pl != tt.cmds || c != 0 {
			t.Errorf("%s: %d pipelines of %d commands and %d single commands, want 1 pipeline of %d and none",
				tt.name, p, pl, c, tt.cmds)
		}
	}
	hook.reset()
	if _, err := v.Observe(ctx, signals.Event{ID: "rt-3", Action: "login", At: at}); err != nil {
		t.Fatal(err)
	}
	if p, c := hook.pipelines.Load(), hook.process.Load(); p != 0 || c != 0 {
		t.Errorf("event without ids: %d pipelines and %d commands, want none", p, c)
	}
}

// TestNoScriptFallback checks that when Redis does not have the script cached (restart,
// SCRIPT FLUSH, failover) Observe still succeeds, with one more round trip, once.
func TestNoScriptFallback(t *testing.T) {
	t.Parallel()
	client := newClientWith(t, func(o *goredis.Options) { o.PoolSize, o.MinIdleConns = 1, 0 })
	hook := &countingHook{}
	client.AddHook(hook)
	v, _ := newVelocity(t, client)
	ctx := context.Background()
	at := time.Now()
	if _, err := v.Observe(ctx, signals.Event{ID: "ns-0", Action: "warm-up", UserID: "u", At: at}); err != nil {
		t.Fatal(err)
	}
	redis.SetScriptSuffix(v, "\n-- never cached "+uuid.NewString())
	for i, want := range []int64{2, 1} {
		hook.reset()
		obs, err := v.Observe(ctx, signals.Event{ID: "ns-" + string(rune('1'+i)), Action: "login", UserID: "u", DeviceID: "d", IP: "192.0.2.9", At: at})
		if err != nil {
			t.Fatalf("Observe %d: %v", i+1, err)
		}
		if obs.User.Count1m != int64(i+1) || obs.Device.Count1m != int64(i+1) || obs.IP.Count1m != int64(i+1) {
			t.Errorf("Observe %d: counts %+v", i+1, obs)
		}
		if p := hook.pipelines.Load(); p != want {
			t.Errorf("Observe %d: %d round trips, want %d", i+1, p, want)
		}
	}
}

// TestDeadRedis checks that a Redis that refuses connections makes Observe fail at once.
func TestDeadRedis(t *testing.T) {
	t.Parallel()
	client := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = client.Close() })
	checkFailsFast(t, client)
}

// TestSlowRedis checks that a Redis that accepts connections and never answers makes
// Observe fail when the caller's deadline passes, not the client's timeouts.
func TestSlowRedis(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // read nothing, answer nothing
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	client := goredis.NewClient(&goredis.Options{Addr: ln.Addr().String(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = client.Close() })
	checkFailsFast(t, client)
}

func checkFailsFast(t *testing.T, client *goredis.Client) {
	t.Helper()
	v, err := redis.New(client)
	if err != nil {
		t.Fatal(err)
	}
	const deadline = 100 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	_, err = v.Observe(ctx, signals.Event{ID: "x", Action: "login", UserID: "u", At: time.Now()})
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("Observe = nil error, want an error")
	}
	if elapsed > deadline+400*time.Millisecond {
		t.Errorf("Observe took %v with a %v deadline", elapsed, deadline)
	}
	t.Logf("after %v: %v", elapsed.Round(time.Millisecond), err)
}

func TestNewRejects(t *testing.T) {
	t.Parallel()
	ignoresDeadlines := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = ignoresDeadlines.Close() })
	ok := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = ok.Close() })
	for _, tt := range []struct {
		name   string
		client goredis.UniversalClient
		opts   []redis.Option
	}{
		{"nil client", nil, nil},
		{"client ignoring deadlines", ignoresDeadlines, nil},
		{"prefix with a hash tag", ok, []redis.Option{redis.WithPrefix("tenant{a}:")}},
	} {
		if _, err := redis.New(tt.client, tt.opts...); err == nil {
			t.Errorf("%s: New = nil error, want an error", tt.name)
		}
	}
	if _, err := redis.New(ok, redis.WithPrefix("tenant-a:")); err != nil {
		t.Errorf("New with a plain prefix: %v", err)
	}
}

func TestInvalidEventIs(t *testing.T) {
	t.Parallel()
	client := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = client.Close() })
	v, err := redis.New(client)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Observe(context.Background(), signals.Event{UserID: "u", At: time.Now()}); !errors.Is(err, redis.ErrInvalidEvent) {
		t.Errorf("Observe without id: error = %v, want ErrInvalidEvent", err)
	}
}

// TestEvictionRisk runs a Redis of its own with a memory limit and an eviction policy (the
// shared test server must not get one: it would evict other tests' keys), and checks that
// EvictionRisk names them, and that noeviction or no limit is no risk.
func TestEvictionRisk(t *testing.T) {
	client, _ := redistest.Private(t, "--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru")
	ctx := t.Context()
	v, err := redis.New(client)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		maxmemory, policy, want string
	}{
		{"64mb", "allkeys-lru", "maxmemory 67108864 bytes with maxmemory-policy allkeys-lru"},
		{"64mb", "volatile-ttl", "maxmemory 67108864 bytes with maxmemory-policy volatile-ttl"},
		{"64mb", "noeviction", ""},
		{"0", "allkeys-lru", ""},
	} {
		if err := client.ConfigSet(ctx, "maxmemory", tc.maxmemory).Err(); err != nil {
			t.Fatal(err)
		}
		if err := client.ConfigSet(ctx, "maxmemory-policy", tc.policy).Err(); err != nil {
			t.Fatal(err)
		}
		if got, err := v.EvictionRisk(ctx); err != nil || got != tc.want {
			t.Errorf("maxmemory %s, %s: EvictionRisk = %q, %v; want %q", tc.maxmemory, tc.policy, got, err, tc.want)
		}
	}
	// The shared test server: whatever it is set to, the answer parses.
	shared, _ := newVelocity(t, newClient(t))
	if _, err := shared.EvictionRisk(ctx); err != nil {
		t.Errorf("EvictionRisk on the test server: %v", err)
	}
}
