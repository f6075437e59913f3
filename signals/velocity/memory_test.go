package velocity_test

import (
	"testing"

	"github.com/verdict-engine/verdict/signals"
	"github.com/verdict-engine/verdict/signals/velocity"
	"github.com/verdict-engine/verdict/signals/velocitytest"
)

func TestMemory(t *testing.T) {
	t.Parallel()
	velocitytest.Run(t, func(t *testing.T) signals.Velocity { return velocity.NewMemory() })
}
