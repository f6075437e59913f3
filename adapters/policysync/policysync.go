// Package policysync keeps a replica's engine on the policy versions the store says are
// live. A Syncer polls the store's live state (a generation number, the active version
// of each action, its shadow versions); when the generation changes it compiles the
// versions it has not seen, composes them over the base bundle and swaps the result into
// the engine: no restart, and requests in flight finish on the set they started with.
package policysync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/store"
)

// Store is what a Syncer reads: the live state and the published versions
// (store.PolicyStore).
type Store interface {
	// LivePolicies returns the live and shadow versions with their generation.
	LivePolicies(ctx context.Context) (store.LivePolicies, error)
	// PolicyVersion returns a version with its files, or store.ErrNotFound.
	PolicyVersion(ctx context.Context, hash string) (store.PolicyVersion, error)
}

// Syncer makes an Engine serve the live policy versions. It is safe for concurrent use.
type Syncer struct {
	st       Store
	eng      *engine.Engine
	log      *slog.Logger
	interval time.Duration
	timeout  time.Duration
	loadOpts []engine.LoadOption
	m        *metrics

	mu       sync.Mutex // serializes syncs and base changes
	base     *engine.PolicySet
	live     *store.LivePolicies // the state last applied; nil before the first sync
	versions map[string]compiled // compiled versions by hash, failures included
	refused  map[string]bool     // action + "@" + hash already reported as refused
	// overrides are the live versions the engine serves, by action.
	overrides map[string]*engine.Policy

	shadow  atomic.Pointer[map[string][]*engine.Policy]
	applied atomic.Int64  // generation last applied
	poke    chan struct{} // Poke: sync now rather than at the next tick
}

type compiled struct {
	set *engine.PolicySet
	err error // the version does not compile, or does not exist
}

// Option configures a Syncer.
type Option func(*Syncer)

// WithInterval sets how often the store is polled (default 2 s).
func WithInterval(d time.Duration) Option { return func(s *Syncer) { s.interval = d } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(s *Syncer) { s.log = l } }

// WithRegisterer registers the syncer's metrics: verdict_policy_generation,
// verdict_policy_swaps_total, verdict_policy_sync_errors_total and
// verdict_policy_versions_refused_total{action}.
func WithRegisterer(r prometheus.Registerer) Option {
	return func(s *Syncer) { s.m = newMetrics(r) }
}

// WithLoadOptions sets the options versions are compiled with; use those the base set
// was loaded with.
func WithLoadOptions(opts ...engine.LoadOption) Option {
	return func(s *Syncer) { s.loadOpts = opts }
}

// New returns a Syncer that keeps eng on the live versions of st, composed over base
// (the embedded bundle or the --policies directory) for actions with no live version.
// Nothing happens until Sync or Run.
func New(st Store, eng *engine.Engine, base *engine.PolicySet, opts ...Option) *Syncer {
	s := &Syncer{
		st: st, eng: eng, base: base, interval: 2 * time.Second, timeout: 10 * time.Second,
		log: slog.New(slog.DiscardHandler), versions: map[string]compiled{}, refused: map[string]bool{},
		poke: make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(s)
	}
	if s.m == nil {
		s.m = newMetrics(nil)
	}
	s.shadow.Store(&map[string][]*engine.Policy{})
	return s
}

// Run polls the store every interval until ctx is done. Poll failures are logged (once
// per outage) and counted; the running policies stay in place meanwhile.
func (s *Syncer) Run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.poke:
		}
		sctx, cancel := context.WithTimeout(ctx, s.timeout)
		err := s.Sync(sctx)
		cancel()
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil && !failing:
			s.log.Warn("policy sync failed; keeping the running policies", "err", err)
		case err == nil && failing:
			s.log.Info("policy sync recovered", "generation", s.applied.Load())
		}
		failing = err != nil
	}
}

// Poke makes Run sync now rather than at its next tick: the replica that changed the live
// or shadow versions serves them at once, not up to an interval later. It never blocks;
// pokes while a sync is pending fold into it.
func (s *Syncer) Poke() {
	select {
	case s.poke <- struct{}{}:
	default:
	}
}

// Sync reads the live state once and, when its generation differs from the one last
// applied, compiles what it needs and swaps the engine's policy set.
//
// A version that does not compile (or does not define the action it is live or shadow
// for, or was never published) is refused: it is logged and counted once, the action
// keeps the policy it runs, and every other change applies. Sync returns an error, and
// changes nothing, when the store cannot be read; the next Sync retries.
func (s *Syncer) Sync(ctx context.Context) error {
	live, err := s.st.LivePolicies(ctx)
	if err != nil {
		s.m.errors.Inc()
		return fmt.Errorf("read live policies: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live != nil && s.live.Generation == live.Generation {
		return nil
	}
	if err := s.apply(ctx, live, s.base); err != nil {
		s.m.errors.Inc()
		return err
	}
	return nil
}

// SetBase replaces the base set (a reloaded --policies directory) and swaps in the base
// composed with the live versions last applied.
func (s *Syncer) SetBase(ctx context.Context, base *engine.PolicySet) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	live := store.LivePolicies{}
	if s.live != nil {
		live = *s.live
	}
	return s.apply(ctx, live, base)
}

// Shadow returns the compiled shadow versions of action, in the order they were set;
// each policy's Hash is its published version's. The slice must not be modified.
func (s *Syncer) Shadow(action string) []*engine.Policy {
	return (*s.shadow.Load())[action]
}

// Generation returns the generation of the live state last applied (0 before).
func (s *Syncer) Generation() int64 { return s.applied.Load() }

// apply compiles what live needs, composes it over base and swaps it in. It holds s.mu.
func (s *Syncer) apply(ctx context.Context, live store.LivePolicies, base *engine.PolicySet) error {
	needed := map[string]bool{}
	for _, h := range live.Active {
		needed[h] = true
	}
	for _, hs := range live.Shadow {
		for _, h := range hs {
			needed[h] = true
		}
	}
	for _, h := range slices.Sorted(maps.Keys(needed)) {
		if _, ok := s.versions[h]; ok {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		v, err := s.st.PolicyVersion(ctx, h)
		switch {
		case errors.Is(err, store.ErrNotFound):
			s.versions[h] = compiled{err: errors.New("no such published version")}
			continue
		case err != nil:
			return fmt.Errorf("read policy version %s: %w", h, err)
		}
		set, err := engine.LoadVersion(h, v.Files, s.loadOpts...)
		s.versions[h] = compiled{set: set, err: err}
	}

	overrides := map[string]*engine.Policy{}
	for _, action := range slices.Sorted(maps.Keys(live.Active)) {
		h := live.Active[action]
		p, err := s.policy(h, action)
		if err != nil {
			s.refuse(action, h, "active", err)
			// Keep what the action runs now: an earlier live version, or the base.
			if p = s.overrides[action]; p == nil {
				continue
			}
		}
		overrides[action] = p
	}
	shadow := make(map[string][]*engine.Policy, len(live.Shadow))
	for _, action := range slices.Sorted(maps.Keys(live.Shadow)) {
		for _, h := range live.Shadow[action] {
			p, err := s.policy(h, action)
			if err != nil {
				s.refuse(action, h, "shadow", err)
				continue
			}
			running := overrides[action]
			if running == nil {
				running, _ = base.Policy(action)
			}
			if running != nil && running.Hash == p.Hash {
				continue // it is what the action runs (activated since): it would agree with itself
			}
			shadow[action] = append(shadow[action], p)
		}
	}
	set, err := engine.Compose(base, overrides)
	if err != nil {
		return err
	}
	s.eng.Swap(set)
	s.shadow.Store(&shadow)
	s.base = base
	s.live = &live
	s.overrides = overrides
	s.applied.Store(live.Generation)
	s.m.generation.Set(float64(live.Generation))
	s.m.swaps.Inc()
	for h := range s.versions {
		if !needed[h] {
			delete(s.versions, h)
		}
	}
	s.log.Info("policies synced", "generation", live.Generation, "policies", describe(set), "shadow", describeShadow(shadow))
	return nil
}

// policy returns the compiled policy of action in version h.
func (s *Syncer) policy(h, action string) (*engine.Policy, error) {
	c := s.versions[h]
	if c.err != nil {
		return nil, c.err
	}
	p, ok := c.set.Policy(action)
	if !ok {
		return nil, fmt.Errorf("the version defines no policy for %q (it has %s)", action, strings.Join(c.set.Actions(), ", "))
	}
	return p, nil
}

func (s *Syncer) refuse(action, h, role string, err error) {
	key := action + "@" + h
	if s.refused[key] {
		return
	}
	s.refused[key] = true
	s.m.refused.WithLabelValues(action).Inc()
	s.log.Error("policy version refused; the action keeps its running policy", "action", action, "version", h, "role", role, "err", err)
}

func describe(set *engine.PolicySet) string {
	var b strings.Builder
	for i, a := range set.Actions() {
		p, _ := set.Policy(a)
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(a + "@" + p.Version + "(" + p.Hash + ")")
	}
	return b.String()
}

func describeShadow(shadow map[string][]*engine.Policy) string {
	var b strings.Builder
	for _, a := range slices.Sorted(maps.Keys(shadow)) {
		for _, p := range shadow[a] {
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(a + "@" + p.Version + "(" + p.Hash + ")")
		}
	}
	return b.String()
}

type metrics struct {
	generation prometheus.Gauge
	swaps      prometheus.Counter
	errors     prometheus.Counter
	refused    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		generation: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "verdict_policy_generation", Help: "Generation of the live policy state this replica serves.",
		}),
		swaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "verdict_policy_swaps_total", Help: "Policy sets swapped into the engine by the policy syncer.",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "verdict_policy_sync_errors_total", Help: "Policy syncs that failed to read the store; the running policies stayed.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verdict_policy_versions_refused_total", Help: "Live or shadow policy versions refused (do not compile or lack the action), by action.",
		}, []string{"action"}),
	}
	if reg != nil {
		reg.MustRegister(m.generation, m.swaps, m.errors, m.refused)
	}
	return m
}
