package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRingWrapsAndCleansUp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.ring")
	r, err := openRing(path, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i++ { // 40 MiB through a 16 MiB ring
		if err := r.write(); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != ringSize {
		t.Fatalf("ring file: %v, size %d, want %d", err, fi.Size(), ringSize)
	}
	if r.off != 8<<20 { // 40 writes: two full turns of 16, then 8
		t.Fatalf("offset %d after 40 writes, want %d", r.off, 8<<20)
	}
	r.close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("ring file left behind: %v", err)
	}
}

func TestBadSizeRefused(t *testing.T) {
	for _, size := range []string{"0", "-1", "16777217"} {
		err := run([]string{"-fsync", "-size", size})
		if err == nil || !strings.Contains(err.Error(), "-size") {
			t.Errorf("-size %s: %v, want an error naming -size", size, err)
		}
	}
}
