package main

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verdict-engine/verdict/signals/redis"
	"github.com/verdict-engine/verdict/signals/redis/redistest"
)

// TestEvictionRiskIsWatched: serve asks Redis again and again whether it may evict
// counters, so a maxmemory policy changed after start is reported (metric and one warning
// per change to a risk), and a Redis that cannot be asked shows as -1. It runs a Redis of
// its own, to reconfigure and to stop.
func TestEvictionRiskIsWatched(t *testing.T) {
	client, kill := redistest.Private(t)
	ctx := t.Context()
	v, err := redis.New(client)
	if err != nil {
		t.Fatal(err)
	}
	set := func(maxmemory, policy string) {
		t.Helper()
		if err := client.ConfigSet(ctx, "maxmemory", maxmemory).Err(); err != nil {
			t.Fatal(err)
		}
		if err := client.ConfigSet(ctx, "maxmemory-policy", policy).Err(); err != nil {
			t.Fatal(err)
		}
	}
	set("0", "noeviction")

	var logs syncBuffer
	reg := prometheus.NewRegistry()
	watchEvictionRisk(ctx, v, reg, slog.New(slog.NewJSONHandler(&logs, nil)), 20*time.Millisecond)
	gauge := func() float64 {
		mfs, err := reg.Gather()
		if err != nil || len(mfs) != 1 {
			t.Fatalf("gather: %d families, %v", len(mfs), err)
		}
		return mfs[0].GetMetric()[0].GetGauge().GetValue()
	}
	warnings := func() int { return strings.Count(logs.String(), "Redis may evict velocity counters") }
	await := func(want float64) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); gauge() != want; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("verdict_redis_eviction_risk = %v, want %v", gauge(), want)
			}
		}
	}
	if gauge() != 0 || warnings() != 0 {
		t.Fatalf("no limit: gauge %v, %d warnings", gauge(), warnings())
	}
	set("64mb", "allkeys-lru")
	await(1)
	time.Sleep(100 * time.Millisecond) // several more checks: still one warning
	if warnings() != 1 {
		t.Fatalf("%d warnings after the policy turned to allkeys-lru, want 1:\n%s", warnings(), logs.String())
	}
	set("64mb", "noeviction")
	await(0)
	set("64mb", "volatile-ttl")
	await(1)
	if warnings() != 2 || !strings.Contains(logs.String(), "maxmemory-policy volatile-ttl") {
		t.Fatalf("%d warnings, want 2 (the second naming volatile-ttl):\n%s", warnings(), logs.String())
	}
	kill()
	await(-1)
}
