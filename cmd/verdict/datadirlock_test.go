//go:build unix

package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
)

// TestOneServerPerDataDirectory: a second server on an embedded data directory in use
// exits with one line naming the holder, and the directory is free again once the first
// lets go.
func TestOneServerPerDataDirectory(t *testing.T) {
	dir := t.TempDir()
	release, err := lockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockDataDir(dir); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("in use by another verdict serve (pid %d)", os.Getpid())) {
		t.Fatalf("second lock = %v, want in use by this pid", err)
	}
	getenv := func(string) string { return "" }
	err = run(t.Context(), []string{"serve", "--dev", "--addr", "127.0.0.1:0", "--data-dir", dir}, getenv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "is in use by another verdict serve") {
		t.Fatalf("serve on a directory in use: %v", err)
	}
	release()
	again, err := lockDataDir(dir)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	again()
}

// TestEraseGoesThroughTheRunningServer: `verdict erase` on an embedded data directory a
// server holds is refused (that server would keep sealing under the destroyed key for up
// to a minute) and names the API to use; with no server there, it erases.
func TestEraseGoesThroughTheRunningServer(t *testing.T) {
	dir := storeDir(t)
	release, err := lockDataDir(dir) // a verdict serve
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = runArgs(t, nil, "erase", "user-1", "--data-dir", dir)
	want := fmt.Sprintf("erase: a verdict serve (pid %d) runs on ", os.Getpid())
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "DELETE /v1/subjects/{user_id}") {
		t.Fatalf("erase beside a server: %v, want %q and the API to use", err, want)
	}
	release()
	out, _, err := runArgs(t, nil, "erase", "user-1", "--data-dir", dir)
	if err != nil || !strings.Contains(out, `"user_id": "user-1"`) {
		t.Fatalf("erase with no server: %q, %v", out, err)
	}
}
