package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	httpapi "github.com/verdict-engine/verdict/adapters/http"
	"github.com/verdict-engine/verdict/adapters/policysync"
	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/store"
)

// policySyncInterval is how often a replica polls the live policy versions: an
// activation is served everywhere within it (plus a compile).
const policySyncInterval = 2 * time.Second

// policyLifecycle is the replica side of the policy lifecycle: the syncer that keeps the
// engine on the live versions over the base bundle, and the shadow evaluator.
type policyLifecycle struct {
	syncer *policysync.Syncer
	shadow *httpapi.Shadow
	log    *slog.Logger
}

// startPolicyLifecycle syncs the live versions once (so a restarted replica serves them
// from its first request; a store that does not answer leaves the base bundle until the
// next poll), then polls every policySyncInterval and starts the shadow workers until ctx
// is done. stop flushes the shadow results.
func startPolicyLifecycle(ctx context.Context, st store.PolicyStore, eng *engine.Engine, base *engine.PolicySet, shadowRate float64, reg prometheus.Registerer, log *slog.Logger) *policyLifecycle {
	l := &policyLifecycle{log: log}
	l.syncer = policysync.New(st, eng, base, policysync.WithInterval(policySyncInterval), policysync.WithLogger(log), policysync.WithRegisterer(reg))
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if err := l.syncer.Sync(sctx); err != nil {
		log.Warn("live policies not read at start; serving the base bundle until the next poll", "err", err)
	}
	cancel()
	go l.syncer.Run(ctx)
	l.shadow = httpapi.NewShadow(eng, l.syncer, st, httpapi.WithShadowRate(shadowRate), httpapi.WithShadowRegisterer(reg), httpapi.WithShadowLogger(log))
	l.shadow.Start()
	return l
}

// syncNow applies a change this replica made to the live or shadow versions before the
// API answers it, so that the caller's next decision here runs what it activated. When
// the store does not answer in time, the poll loop is poked to try again at once.
func (l *policyLifecycle) syncNow(ctx context.Context) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := l.syncer.Sync(sctx); err != nil {
		l.log.Warn("policy sync after a change failed; the poll retries", "err", err)
		l.syncer.Poke()
	}
}

// setBase makes a reloaded --policies bundle the base under the live versions.
func (l *policyLifecycle) setBase(ctx context.Context) func(*engine.PolicySet) {
	return func(set *engine.PolicySet) {
		if err := l.syncer.SetBase(ctx, set); err != nil {
			l.log.Error("policy reload refused; keeping the running policies", "err", err)
		}
	}
}

// stop evaluates the queued shadow work and writes its results; call it after the HTTP
// server has stopped and before the store closes.
func (l *policyLifecycle) stop(ctx context.Context) {
	if err := l.shadow.Close(ctx); err != nil {
		l.log.Error("flush shadow results", "err", err)
	}
}
