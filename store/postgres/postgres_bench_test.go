package postgres_test

import (
	"testing"

	"github.com/verdict-engine/verdict/store/storetest"
)

func BenchmarkWriteDecisions(b *testing.B) {
	storetest.BenchmarkWriteDecisions(b, openStore(b, newSchema(b)))
}
