package vault

import (
	"bytes"
	"testing"
	"time"
)

// Without an erasure feed, a cached key is used for CacheTTL. With one, only while it is
// delivering (a replica whose listener is reconnecting may be missing an erasure), and
// never past HeardCacheTTL.
func TestCacheTTLWhileErasuresAreHeard(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)
	v := New(nil, nil)
	v.remember("u", bytes.Repeat([]byte{1}, 32), t0, v.generation())
	heard := false
	for _, tc := range []struct {
		after        time.Duration
		hear, listen bool
		want         bool
	}{
		{30 * time.Second, false, false, true},
		{2 * time.Minute, false, false, false},
		{2 * time.Minute, true, false, false}, // a feed that is not delivering
		{1 * time.Second, true, false, false}, // not even a fresh key
		{2 * time.Minute, true, true, true},
		{14 * time.Minute, true, true, true},
		{16 * time.Minute, true, true, false},
	} {
		v.heard = nil
		if tc.hear {
			v.heard = func() bool { return heard }
		}
		heard = tc.listen
		if got := v.cachedAEAD("u", t0.Add(tc.after)) != nil; got != tc.want {
			t.Errorf("after %v, feed %v, delivering %v: cached = %v, want %v", tc.after, tc.hear, tc.listen, got, tc.want)
		}
	}
}
