package redis_test

import (
	"testing"

	"github.com/verdict-engine/verdict/signals"
	"github.com/verdict-engine/verdict/signals/velocitytest"
)

func BenchmarkObserve(b *testing.B) {
	client := newClient(b)
	// 8 callers per core: a round trip is mostly waiting, as in a server.
	velocitytest.Benchmark(b, func(b *testing.B) signals.Velocity {
		v, _ := newVelocity(b, client)
		if err := v.Load(b.Context()); err != nil {
			b.Fatal(err)
		}
		return v
	}, 8)
}
