package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServingLineNamesTheLiveVersions: the "verdict serving" line names the versions the
// server answers with, a published version live in the store included, not the base
// bundle's under it.
func TestServingLineNamesTheLiveVersions(t *testing.T) {
	dir := storeDir(t)
	env := map[string]string{"VERDICT_DATA_DIR": dir, "USER": "alice"}
	bundle := copyDir(t, filepath.Join("..", "..", "policies", "bundle"))
	payout := filepath.Join(bundle, "payout", "payout.rego")
	src, err := os.ReadFile(payout)
	if err != nil {
		t.Fatal(err)
	}
	changed := bytes.Replace(src, []byte("version: payout-2026.12.1"), []byte("version: payout-live-test"), 1)
	if bytes.Equal(changed, src) {
		t.Fatal("version label not found in payout.rego")
	}
	if err := os.WriteFile(payout, changed, 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := runPolicyArgs(t, env, "publish", bundle, "--label", "live-test", "--changelog", "test")
	if err != nil {
		t.Fatalf("publish: %v\n%s", err, errOut)
	}
	if _, errOut, err := runPolicyArgs(t, env, "activate", "payout", strings.TrimSpace(out)); err != nil {
		t.Fatalf("activate: %v\n%s", err, errOut)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var logs syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--dev", "--addr", "127.0.0.1:0", "--data-dir", dir}, func(string) string { return "" }, &bytes.Buffer{}, &logs)
	}()
	var line string
	for line == "" {
		select {
		case err := <-done:
			t.Fatalf("serve ended: %v\n%s", err, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, `"msg":"verdict serving"`) {
				line = l
			}
		}
	}
	cancel()
	<-done
	if !strings.Contains(line, "payout@payout-live-test(") {
		t.Errorf("serving line does not name the live payout version:\n%s", line)
	}
}

// TestServeRefusesAnotherMasterKeyOnAStoreWithoutSubjectKeys: a server started with
// another master key under the same id as the store's first server is refused even before
// any subject key is stored (CheckRing has nothing to unwrap then).
func TestServeRefusesAnotherMasterKeyOnAStoreWithoutSubjectKeys(t *testing.T) {
	dir := storeDir(t)
	env := map[string]string{"VERDICT_MASTER_KEY": "1:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))}
	getenv := func(k string) string { return env[k] }
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var logs syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--dev", "--addr", "127.0.0.1:0", "--data-dir", dir}, getenv, &bytes.Buffer{}, &logs)
	}()
	for !strings.Contains(logs.String(), `"msg":"verdict serving"`) {
		select {
		case err := <-done:
			t.Fatalf("first serve ended: %v\n%s", err, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	<-done

	// A server that starts anyway stops after a few seconds rather than hang the test.
	short := func() context.Context {
		c, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		t.Cleanup(cancel)
		return c
	}
	env["VERDICT_MASTER_KEY"] = "1:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
	err := run(short(), []string{"serve", "--dev", "--addr", "127.0.0.1:0", "--data-dir", dir}, getenv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `VERDICT_MASTER_KEY: master key "1" is not the key the store's first server recorded`) {
		t.Fatalf("serve with another master key: %v", err)
	}
	// Without the variable serve makes a fresh key for master.key: refused, and the file is
	// not left behind (it was written, then named as if it were the operator's key file).
	delete(env, "VERDICT_MASTER_KEY")
	err = run(short(), []string{"serve", "--dev", "--addr", "127.0.0.1:0", "--data-dir", dir}, getenv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "VERDICT_MASTER_KEY is not set, and there is no key file "+filepath.Join(dir, "master.key")) {
		t.Fatalf("serve with a fresh key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "master.key")); !os.IsNotExist(err) {
		t.Errorf("a refused serve left master.key: %v", err)
	}
	// The first server, which started, kept the pseudonym key it made.
	if _, err := os.Stat(filepath.Join(dir, "pseudonym.key")); err != nil {
		t.Errorf("the first server did not keep its pseudonym key file: %v", err)
	}
}
