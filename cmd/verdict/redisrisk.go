package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verdict-engine/verdict/signals/redis"
)

// evictionRiskEvery is how often serve asks Redis whether it may evict velocity counters.
const evictionRiskEvery = 5 * time.Minute

// watchEvictionRisk asks Redis, at once and then every `every` until ctx ends, whether it
// may evict velocity counters (a maxmemory limit with any policy but noeviction: counts would
// then drop silently), exports the answer as verdict_redis_eviction_risk and logs a warning
// each time it turns to a risk. A Redis unreachable at start, or reconfigured later, is
// seen too.
func watchEvictionRisk(ctx context.Context, v *redis.Velocity, reg prometheus.Registerer, log *slog.Logger, every time.Duration) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "verdict_redis_eviction_risk",
		Help: "1 when Redis may evict velocity counters (a maxmemory limit and a maxmemory-policy other than noeviction), 0 when it may not, -1 when Redis could not be asked; checked every 5 minutes.",
	})
	reg.MustRegister(g)
	g.Set(-1)
	var risky, askedOnce bool
	check := func() {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		risk, err := v.EvictionRisk(cctx)
		switch {
		case err != nil:
			g.Set(-1)
			if !askedOnce {
				log.Warn("could not check whether Redis may evict velocity counters; checking again every 5 min", "err", err)
			}
			return
		case risk != "":
			g.Set(1)
			if !risky {
				log.Warn("Redis may evict velocity counters under memory pressure, and counts would then drop silently: set maxmemory-policy noeviction, so that a full Redis refuses writes and decisions follow their fail mode", "found", risk)
			}
		default:
			g.Set(0)
		}
		risky, askedOnce = risk != "", true
	}
	check()
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				check()
			}
		}
	}()
}
