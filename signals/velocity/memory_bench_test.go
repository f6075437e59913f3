package velocity_test

import (
	"testing"

	"github.com/verdict-engine/verdict/signals"
	"github.com/verdict-engine/verdict/signals/velocity"
	"github.com/verdict-engine/verdict/signals/velocitytest"
)

func BenchmarkObserve(b *testing.B) {
	velocitytest.Benchmark(b, func(*testing.B) signals.Velocity { return velocity.NewMemory() }, 1)
}
