package main

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/verdict-engine/verdict/signals"
	"github.com/verdict-engine/verdict/signals/redis"
)

// TestRedisDownFailsFast checks the client the server builds for velocity against a port
// that refuses connections: an Observe fails after its one retry, without backoff, long
// before its deadline. With go-redis's defaults (three retries with backoff, five dials
// per connection with backoff) the same Observe dialed 12 times and used up its whole
// one-second deadline.
func TestRedisDownFailsFast(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: dials are refused

	opts, err := redisOptions("redis://" + addr + "/0")
	if err != nil {
		t.Fatal(err)
	}
	var dials atomic.Int32
	opts.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	client := goredis.NewClient(opts)
	t.Cleanup(func() { _ = client.Close() })
	v, err := redis.New(client)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	_, err = v.Observe(ctx, signals.Event{ID: "e1", Action: "login", UserID: "u1", At: time.Now()})
	took := time.Since(start)
	if err == nil {
		t.Fatal("Observe against a refused port = nil error")
	}
	// A pipeline dials twice per attempt in go-redis v9.23: 4 for one retry.
	if n := dials.Load(); n > 4 {
		t.Errorf("Observe dialed %d times, want at most 4 (one retry, one dial per connection)", n)
	}
	if took > 500*time.Millisecond {
		t.Errorf("Observe took %v to fail", took)
	}
	t.Logf("failed after %v: %v", took, err)
}

// TestRedisOptionsKeepTheURLs checks that retry and timeout settings given in
// VERDICT_REDIS_URL win over the decision path's defaults.
func TestRedisOptionsKeepTheURLs(t *testing.T) {
	opts, err := redisOptions("redis://127.0.0.1:6379/0?max_retries=3&min_retry_backoff=5ms&protocol=3&read_timeout=250ms&dial_timeout=1s")
	if err != nil {
		t.Fatal(err)
	}
	if opts.MaxRetries != 3 || opts.MinRetryBackoff != 5*time.Millisecond || opts.Protocol != 3 ||
		opts.ReadTimeout != 250*time.Millisecond || opts.DialTimeout != time.Second {
		t.Errorf("options = max_retries %d, min_retry_backoff %v, protocol %d, read_timeout %v, dial_timeout %v; want the URL's",
			opts.MaxRetries, opts.MinRetryBackoff, opts.Protocol, opts.ReadTimeout, opts.DialTimeout)
	}
	if opts.WriteTimeout != 100*time.Millisecond || !opts.ContextTimeoutEnabled {
		t.Errorf("options the URL does not set = write_timeout %v, context timeouts %v; want 100ms, on", opts.WriteTimeout, opts.ContextTimeoutEnabled)
	}
	if _, err := redisOptions("http://x"); err == nil {
		t.Error("redisOptions accepted an http URL")
	}
}

// TestRedisRefusalStopsTheStart: a Redis that answers and refuses (a database index it does
// not have) is a setting to fix, not an outage to wait out; one that cannot be reached is.
func TestRedisRefusalStopsTheStart(t *testing.T) {
	ctx := context.Background()
	if _, _, _, err := openVelocity(ctx, backendConfig{redisURL: "redis://127.0.0.1:6379/99"}); err == nil || !strings.Contains(err.Error(), "DB index is out of range") {
		t.Fatalf("database 99: %v, want the refusal", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	v, kind, closeV, err := openVelocity(ctx, backendConfig{redisURL: "redis://" + addr + "/0"})
	if err != nil || v == nil || !strings.Contains(kind, "unreachable at start") {
		t.Fatalf("unreachable Redis: %q, %v; want a start that waits for it", kind, err)
	}
	closeV()
	for msg, want := range map[string]bool{"LOADING Redis is loading": true, "BUSY Redis is busy": true, "ERR DB index is out of range": false, "NOPERM": false} {
		if got := transientRedisReply(msg); got != want {
			t.Errorf("transientRedisReply(%q) = %v", msg, got)
		}
	}
}
