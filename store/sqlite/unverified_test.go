package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/verdict-engine/verdict/store"
	"github.com/verdict-engine/verdict/store/sqlite"
)

// The embedded store caches "no verification session" per user. Lookups hammer users
// while their first sessions are created: once CreateVerification has returned, every
// lookup must see the session.
func TestLatestVerificationSeesNewSessionsDespiteTheCache(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const users = 100
	var created [users]atomic.Bool
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; !stop.Load(); i = (i + 1) % users {
				was := created[i].Load() // read before the lookup starts
				_, err := st.LatestVerification(ctx, fmt.Sprintf("cache-u%d", i))
				if was && errors.Is(err, store.ErrNotFound) {
					t.Errorf("user %d: session created before the lookup, lookup says none", i)
					return
				}
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					t.Error(err)
					return
				}
			}
		})
	}
	for i := range users {
		_, _, err := st.CreateVerification(ctx, store.NewVerification{Verification: store.Verification{
			ID: fmt.Sprintf("ver-cache-%d", i), UserID: fmt.Sprintf("cache-u%d", i), Provider: "onfido", Status: store.StatusInitiated,
		}, Actor: "test"})
		if err != nil {
			t.Fatal(err)
		}
		created[i].Store(true)
		if _, err := st.LatestVerification(ctx, fmt.Sprintf("cache-u%d", i)); err != nil {
			t.Fatalf("user %d right after creation: %v", i, err)
		}
	}
	stop.Store(true)
	wg.Wait()
}
