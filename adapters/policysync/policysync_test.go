package policysync_test

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verdict-engine/verdict/adapters/policysync"
	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/policies"
	"github.com/verdict-engine/verdict/store"
	"github.com/verdict-engine/verdict/store/sqlite"
)

// fakeStore is an in-memory policysync.Store: published versions and a live state whose
// generation moves with every change.
type fakeStore struct {
	mu       sync.Mutex
	versions map[string]store.PolicyVersion
	live     store.LivePolicies
	fail     error // returned by LivePolicies when set
	reads    map[string]int
}

func newFakeStore() *fakeStore {
	return &fakeStore{versions: map[string]store.PolicyVersion{}, reads: map[string]int{},
		live: store.LivePolicies{Generation: 1, Active: map[string]string{}, Shadow: map[string][]string{}}}
}

func (f *fakeStore) LivePolicies(context.Context) (store.LivePolicies, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return store.LivePolicies{}, f.fail
	}
	l := f.live
	l.Active = map[string]string{}
	for k, v := range f.live.Active {
		l.Active[k] = v
	}
	l.Shadow = map[string][]string{}
	for k, v := range f.live.Shadow {
		l.Shadow[k] = append([]string(nil), v...)
	}
	return l, nil
}

func (f *fakeStore) PolicyVersion(_ context.Context, hash string) (store.PolicyVersion, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads[hash]++
	v, ok := f.versions[hash]
	if !ok {
		return store.PolicyVersion{}, store.ErrNotFound
	}
	return v, nil
}

func (f *fakeStore) publish(files map[string][]byte) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := engine.BundleHash(files)
	f.versions[h] = store.PolicyVersion{Hash: h, Files: files}
	return h
}

func (f *fakeStore) change(fn func(l *store.LivePolicies)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.live)
	f.live.Generation++
}

// bundle returns the embedded bundle's files with replace applied to payout.rego.
func bundle(t testing.TB, replace ...string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := fs.WalkDir(policies.Bundle(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files[p], err = fs.ReadFile(policies.Bundle(), p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	files["payout/payout.rego"] = []byte(strings.NewReplacer(replace...).Replace(string(files["payout/payout.rego"])))
	return files
}

func baseSet(t testing.TB) *engine.PolicySet {
	t.Helper()
	set, err := engine.Load(policies.Bundle())
	if err != nil {
		t.Fatal(err)
	}
	return set
}

var payoutInput = engine.Input{
	Action: "payout", Subject: map[string]any{"id": "u1", "account_age_days": 400.0},
	Device: map[string]any{}, Context: map[string]any{"amount": 10.0}, Behavior: map[string]any{},
	Signals: engine.Signals{Verification: engine.Verification{Status: "approved"}},
}

func payoutHash(eng *engine.Engine) string {
	p, _ := eng.Policies().Policy("payout")
	return p.Hash
}

// Two replicas over one store pick up an activation within 5 s while requests keep
// being decided, none failing, each by one whole policy version.
func TestTwoReplicasSeeActivation(t *testing.T) {
	st := newFakeStore()
	v2 := st.publish(bundle(t, "version: payout-2026.12.1", "version: payout-2026.12.2"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	base := baseSet(t)
	baseHash := payoutHash(engine.New(base))
	var engines []*engine.Engine
	var wg sync.WaitGroup
	for range 2 {
		// Generous evaluation deadline: the race detector and two busy request loops on
		// a small machine starve evaluations while a version compiles.
		eng := engine.New(base, engine.WithEvalTimeout(time.Second))
		s := policysync.New(st, eng, base, policysync.WithInterval(2*time.Second))
		if err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { s.Run(ctx) })
		engines = append(engines, eng)
	}

	// Requests run throughout the swap.
	var decided, failed atomic.Int64
	stop := make(chan struct{})
	var load sync.WaitGroup
	for _, eng := range engines {
		load.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				in := payoutInput
				d, err := eng.Decide(ctx, &in)
				if err != nil || (d.Policy.Hash != baseHash && d.Policy.Hash != v2) {
					failed.Add(1)
					t.Errorf("decision %+v, err %v", d.Policy, err)
				}
				decided.Add(1)
			}
		})
	}

	time.Sleep(50 * time.Millisecond)
	activated := time.Now()
	st.change(func(l *store.LivePolicies) { l.Active["payout"] = v2 })
	for i, eng := range engines {
		for payoutHash(eng) != v2 {
			if time.Since(activated) > 5*time.Second {
				t.Fatalf("replica %d still serves %s 5 s after the activation", i, payoutHash(eng))
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("replica %d serves the activated version after %v", i, time.Since(activated).Round(time.Millisecond))
	}
	time.Sleep(20 * time.Millisecond)
	close(stop)
	load.Wait()
	cancel()
	wg.Wait()
	if failed.Load() > 0 || decided.Load() == 0 {
		t.Fatalf("%d of %d decisions failed", failed.Load(), decided.Load())
	}
	for _, eng := range engines {
		if p, _ := eng.Policies().Policy("login"); p.Hash == v2 {
			t.Error("login left the base bundle")
		}
	}
	if n := st.reads[v2]; n != 2 {
		t.Errorf("version read %d times by two replicas, want once each (cached)", n)
	}
}

func TestSyncRefusesBadVersion(t *testing.T) {
	st := newFakeStore()
	reg := prometheus.NewRegistry()
	base := baseSet(t)
	eng := engine.New(base)
	s := policysync.New(st, eng, base, policysync.WithRegisterer(reg))
	ctx := context.Background()

	good := st.publish(bundle(t, "version: payout-2026.12.1", "version: payout-2026.12.2"))
	st.change(func(l *store.LivePolicies) { l.Active["payout"] = good })
	if err := s.Sync(ctx); err != nil || payoutHash(eng) != good {
		t.Fatalf("sync: %v, payout runs %s", err, payoutHash(eng))
	}

	// A version that does not compile, published behind the API's back, and in the
	// same generation a good one for login.
	bad := st.publish(bundle(t, "package verdict.payout", "package verdict.payout\nbroken := {"))
	login := st.publish(bundle(t, "version: payout-2026.12.1", "version: payout-2026.12.3"))
	candidate := st.publish(bundle(t, "version: payout-2026.12.1", "version: payout-2026.12.4"))
	st.change(func(l *store.LivePolicies) {
		l.Active["payout"] = bad
		l.Active["login"] = login
		// good is what payout keeps running: not shadowed; candidate is.
		l.Shadow["payout"] = []string{bad, good, candidate, "sha256:unknown"}
	})
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if payoutHash(eng) != good {
		t.Errorf("payout runs %s, want the running version kept", payoutHash(eng))
	}
	if p, _ := eng.Policies().Policy("login"); p.Hash != login {
		t.Errorf("login runs %s, want %s", p.Hash, login)
	}
	if sh := s.Shadow("payout"); len(sh) != 1 || sh[0].Hash != candidate {
		t.Errorf("shadow %v, want only the good candidate", sh)
	}
	if got := counter(t, reg, "verdict_policy_versions_refused_total"); got != 2 {
		t.Errorf("refused = %v, want 2 (bad, once though active and shadow; unknown)", got)
	}
	// Refusals are cached and counted once.
	st.change(func(*store.LivePolicies) {})
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := counter(t, reg, "verdict_policy_versions_refused_total"); got != 2 || st.reads[bad] != 1 {
		t.Errorf("refused = %v, bad read %d times: want the refusal cached", got, st.reads[bad])
	}

	// An unreadable store keeps everything in place.
	st.mu.Lock()
	st.fail = store.ErrUnavailable
	st.mu.Unlock()
	if err := s.Sync(ctx); !errors.Is(err, store.ErrUnavailable) || payoutHash(eng) != good {
		t.Errorf("sync with the store down: %v, payout %s", err, payoutHash(eng))
	}
	if got := counter(t, reg, "verdict_policy_sync_errors_total"); got != 1 {
		t.Errorf("sync errors = %v, want 1", got)
	}

	// Rolling back to the base, and a new base (SIGHUP) under the live versions.
	st.mu.Lock()
	st.fail = nil
	st.mu.Unlock()
	st.change(func(l *store.LivePolicies) { delete(l.Active, "payout") })
	if err := s.Sync(ctx); err != nil || payoutHash(eng) != payoutHash(engine.New(base)) {
		t.Fatalf("rollback to the base: %v, payout runs %s", err, payoutHash(eng))
	}
	if err := s.SetBase(ctx, baseSet(t)); err != nil {
		t.Fatal(err)
	}
	if p, _ := eng.Policies().Policy("login"); p.Hash != login {
		t.Errorf("after a new base, login runs %s, want the live %s", p.Hash, login)
	}
	if s.Generation() != 5 {
		t.Errorf("generation %d, want 5", s.Generation())
	}
}

func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// storeWithV2 opens an embedded store, closed when the test ends, holding payout-2026.12.2
// published (not live); it returns the store and that version's hash.
func storeWithV2(ctx context.Context, t *testing.T) (*sqlite.Store, string) {
	t.Helper()
	st, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	files := bundle(t, "version: payout-2026.12.1", "version: payout-2026.12.2")
	v2 := engine.BundleHash(files)
	if _, err := st.PublishPolicy(ctx, store.PolicyVersion{Hash: v2, Label: "payout-2026.12.2", Author: "alice", Files: files}, "test"); err != nil {
		t.Fatal(err)
	}
	return st, v2
}

// The same over the embedded store, as serve runs it.
func TestSyncOverEmbeddedStore(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, v2 := storeWithV2(ctx, t)
	base := baseSet(t)
	var engines []*engine.Engine
	var syncers []*policysync.Syncer
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }() // the syncers stop with ctx, also when a check fails
	for range 2 {
		eng := engine.New(base)
		s := policysync.New(st, eng, base, policysync.WithInterval(500*time.Millisecond))
		if err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { s.Run(ctx) })
		engines, syncers = append(engines, eng), append(syncers, s)
	}
	if err := st.SetShadow(ctx, "payout", []string{v2}, "alice", "test"); err != nil {
		t.Fatal(err)
	}
	a, err := st.ActivatePolicy(ctx, store.PolicyActivation{Action: "payout", Hash: v2, Actor: "alice"}, false, "test")
	if err != nil {
		t.Fatal(err)
	}
	for i, eng := range engines {
		// v2 was shadowed, then activated: it runs, and is no longer shadowed.
		for payoutHash(eng) != v2 || len(syncers[i].Shadow("payout")) != 0 {
			if time.Since(a.At) > 5*time.Second {
				t.Fatalf("replica %d serves %s 5 s after the activation", i, payoutHash(eng))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	in := payoutInput
	if d, err := engines[1].Decide(ctx, &in); err != nil || d.Policy.Hash != v2 || d.Policy.Version != "payout-2026.12.2" {
		t.Fatalf("decision %+v, %v", d.Policy, err)
	}
	cancel()
}

// TestPokeSyncsNow: the replica that activated a version is told so and serves it at once,
// not at its next poll (an hour here).
func TestPokeSyncsNow(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	st, v2 := storeWithV2(ctx, t)
	base := baseSet(t)
	eng := engine.New(base)
	s := policysync.New(st, eng, base, policysync.WithInterval(time.Hour))
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Go(func() { s.Run(ctx) })
	if _, err := st.ActivatePolicy(ctx, store.PolicyActivation{Action: "payout", Hash: v2, Actor: "alice"}, false, "test"); err != nil {
		t.Fatal(err)
	}
	s.Poke()
	s.Poke() // folds into the pending one; never blocks
	for start := time.Now(); payoutHash(eng) != v2; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("serves %s 5 s after the poke", payoutHash(eng))
		}
	}
}

// TestActivatedShadowIsNotShadowed: a shadow version that has since been activated is what
// the action runs; evaluating it in shadow would only agree with itself.
func TestActivatedShadowIsNotShadowed(t *testing.T) {
	st := newFakeStore()
	v2 := st.publish(bundle(t, "version: payout-2026.12.1", "version: payout-2026.12.2"))
	v3 := st.publish(bundle(t, "version: payout-2026.12.1", "version: payout-2026.12.3"))
	base := baseSet(t)
	eng := engine.New(base)
	s := policysync.New(st, eng, base)
	ctx := context.Background()
	st.change(func(l *store.LivePolicies) { l.Shadow["payout"] = []string{v2, v3} })
	if err := s.Sync(ctx); err != nil || len(s.Shadow("payout")) != 2 {
		t.Fatalf("sync: %v, shadow %d versions, want 2", err, len(s.Shadow("payout")))
	}
	st.change(func(l *store.LivePolicies) { l.Active["payout"] = v2 })
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if sh := s.Shadow("payout"); len(sh) != 1 || sh[0].Hash != v3 {
		t.Fatalf("shadow after activating v2 = %d versions, want v3 alone", len(sh))
	}
}
