package sqlite_test

import (
	"testing"

	"github.com/verdict-engine/verdict/store/sqlite"
	"github.com/verdict-engine/verdict/store/storetest"
)

func BenchmarkWriteDecisions(b *testing.B) {
	s, err := sqlite.Open(b.Context(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.BenchmarkWriteDecisions(b, s)
}
