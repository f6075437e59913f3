package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// fsyncWriter stands in for a database: every transaction writes 8 KiB to a file and syncs
// it, the one fsync a durable commit costs however many records it carries.
type fsyncWriter struct {
	f                *os.File
	page             []byte
	batches, records atomic.Int64
}

func newFsyncWriter(b *testing.B) *fsyncWriter {
	f, err := os.Create(filepath.Join(b.TempDir(), "wal"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return &fsyncWriter{f: f, page: make([]byte, 8192)}
}

func (w *fsyncWriter) WriteDecisions(_ context.Context, recs []DecisionRecord) ([]error, error) {
	w.batches.Add(1)
	w.records.Add(int64(len(recs)))
	if _, err := w.f.WriteAt(w.page, 0); err != nil {
		return nil, err
	}
	if err := w.f.Sync(); err != nil {
		return nil, err
	}
	return make([]error, len(recs)), nil
}

// BenchmarkGroupCommitter measures a decision's commit latency with N concurrent callers.
// Compare with BenchmarkCommitWithoutGrouping: one transaction per decision.
func BenchmarkGroupCommitter(b *testing.B) {
	for _, callers := range []int{1, 16, 64, 256} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			w := newFsyncWriter(b)
			g := NewGroupCommitter(w, WithLogger(quietLogger()))
			defer g.Close(context.Background())
			b.SetParallelism(max(1, callers/runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				r := DecisionRecord{ID: "d"}
				for pb.Next() {
					if err := g.Commit(ctx, r); err != nil {
						b.Error(err)
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(w.records.Load())/float64(max(1, w.batches.Load())), "records/batch")
		})
	}
}

func BenchmarkCommitWithoutGrouping(b *testing.B) {
	w := newFsyncWriter(b)
	var mu sync.Mutex // a single-writer database serializes transactions
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		r := []DecisionRecord{{ID: "d"}}
		for pb.Next() {
			mu.Lock()
			_, _ = w.WriteDecisions(ctx, r)
			mu.Unlock()
		}
	})
}
