package postgres_test

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verdict-engine/verdict/adapters/vault"
	"github.com/verdict-engine/verdict/store"
)

// erasures records what OnSubjectKeysErased reports.
type erasures struct {
	mu        sync.Mutex
	forgotten []string
	all       int
}

func (e *erasures) forget(u string) { e.mu.Lock(); e.forgotten = append(e.forgotten, u); e.mu.Unlock() }
func (e *erasures) forgetAll()      { e.mu.Lock(); e.all++; e.mu.Unlock() }
func (e *erasures) state() ([]string, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.forgotten...), e.all
}

func subjectKey(user string) store.SubjectKey {
	return store.SubjectKey{UserID: user, KEKID: "1", Wrapped: bytes.Repeat([]byte{1}, 60), CreatedAt: time.Now().UTC()}
}

// Another replica's erasure of a subject key is announced to every listening replica when
// it commits; erasing a subject without a key announces nothing; a listener that lost its
// connection is told to forget everything once it listens again.
func TestSubjectKeyErasuresAreAnnounced(t *testing.T) {
	ctx := t.Context()
	schema := newSchema(t)
	a, b := openStore(t, schema), openStore(t, schema)
	var got erasures
	a.OnSubjectKeysErased(got.forget, got.forgetAll)
	waitFor(t, "the listener to listen", func() bool { _, all := got.state(); return all >= 1 })

	if _, err := b.EnsureSubjectKeys(ctx, []store.SubjectKey{subjectKey("u1"), subjectKey("u3")}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"u1", "u2", "u3"} { // u2 has no key
		e, err := b.EraseSubject(ctx, u, "test", "corr-"+u)
		if err != nil || e.KeyDestroyed != (u != "u2") {
			t.Fatalf("EraseSubject(%s) = key destroyed %v, %v", u, e.KeyDestroyed, err)
		}
	}
	start := time.Now()
	waitFor(t, "u1 and u3 to be announced", func() bool { f, _ := got.state(); return len(f) >= 2 })
	t.Logf("announced within %v", time.Since(start))
	time.Sleep(50 * time.Millisecond)
	if f, _ := got.state(); strings.Join(f, ",") != "u1,u3" {
		t.Fatalf("announced %q, want u1,u3", f)
	}

	// The listener's connection dies: erasures meanwhile may go unheard, so it asks to
	// forget everything when it listens again.
	_, before := got.state()
	var killed int
	if err := admin(t).QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1`, "verdict verification listener "+schema).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminated %d listener backends (%v), want 1", killed, err)
	}
	waitFor(t, "the listener to listen again", func() bool { _, all := got.state(); return all > before })
	if _, err := b.EnsureSubjectKeys(ctx, []store.SubjectKey{subjectKey("u4")}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.EraseSubject(ctx, "u4", "test", "corr-u4"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "u4 to be announced", func() bool { f, _ := got.state(); return len(f) == 3 && f[2] == "u4" })
}

// Two replicas' vaults on one database: after one erases a subject, the other seals that
// subject's new data under a new key that opens, not under the destroyed key it had cached
// (whose data no one could read again).
func TestVaultsForgetKeysAnotherReplicaErased(t *testing.T) {
	ctx := t.Context()
	schema := newSchema(t)
	a, b := openStore(t, schema), openStore(t, schema)
	ring, err := vault.NewRing("1", bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	va, vb := vault.New(ring, a), vault.New(ring, b)
	var heard erasures
	if a.ErasuresHeard() {
		t.Fatal("erasures heard before anything listens")
	}
	a.OnSubjectKeysErased(func(u string) { va.Forget(u); heard.forget(u) }, func() { va.ForgetAll(); heard.forgetAll() })
	va.HearErasures(a.ErasuresHeard)
	waitFor(t, "erasures to be heard", a.ErasuresHeard)

	ad := vault.DecisionAD("d-1")
	if _, err := va.Seal(ctx, "user-1", ad, []byte("before")); err != nil { // caches user-1's key in va
		t.Fatal(err)
	}
	if _, err := vb.Erase(ctx, "user-1", "test", "corr-1", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "replica a to hear of the erasure", func() bool { f, _ := heard.state(); return len(f) == 1 })
	for i := range 3 {
		ad := vault.DecisionAD(fmt.Sprintf("d-after-%d", i))
		sealed, err := va.Seal(ctx, "user-1", ad, []byte("after"))
		if err != nil {
			t.Fatal(err)
		}
		for name, v := range map[string]*vault.Vault{"a": va, "b": vb} {
			if got, err := v.Open(ctx, "user-1", ad, sealed); err != nil || string(got) != "after" {
				t.Fatalf("replica %s opens data sealed after the erasure: %q, %v", name, got, err)
			}
		}
	}
}
