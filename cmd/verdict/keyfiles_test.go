package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A refused keys rotate or seed against Postgres without VERDICT_MASTER_KEY created
// ./data/master.key (seed also pseudonym.key) before refusing.
func TestRefusedKeyCommandsLeaveNoFiles(t *testing.T) {
	dbURL, _ := migratedSchema(t, "t_keyfiles")
	// A fresh schema: rotate has no master key to rotate under, and makes none.
	data := filepath.Join(t.TempDir(), "data")
	env := map[string]string{"VERDICT_DATABASE_URL": dbURL}
	if _, _, err := runArgs(t, env, "keys", "rotate", "--data-dir", data); err == nil || !strings.Contains(err.Error(), "no master key: VERDICT_MASTER_KEY is not set, and there is no key file") {
		t.Fatalf("keys rotate without a master key: %v", err)
	}
	if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused keys rotate left %s: %v", data, err)
	}

	// The store's data is sealed under a master key given in the environment.
	mk := make([]byte, 32)
	_, _ = rand.Read(mk)
	pk := make([]byte, 32)
	_, _ = rand.Read(pk)
	seeded := map[string]string{"VERDICT_DATABASE_URL": dbURL, "VERDICT_MASTER_KEY": "m1:" + base64.StdEncoding.EncodeToString(mk),
		"VERDICT_PSEUDONYM_KEY": base64.StdEncoding.EncodeToString(pk)}
	if _, _, err := runArgs(t, seeded, "seed", "--decisions", "20", "--data-dir", t.TempDir()); err != nil {
		t.Fatal(err)
	}
	// Without the key, both refuse, and leave nothing in the data directory.
	for _, args := range [][]string{
		{"keys", "rotate", "--data-dir", data},
		{"seed", "--decisions", "20", "--seed", "2", "--data-dir", data},
	} {
		_, _, err := runArgs(t, env, args...)
		if err == nil || !strings.Contains(err.Error(), "there is no key file") {
			t.Errorf("%v without the master key: %v", args, err)
		}
		if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
			entries, _ := os.ReadDir(data)
			t.Errorf("%v refused and left %s (%d entries)", args, data, len(entries))
			os.RemoveAll(data)
		}
	}
	// With the master key but another pseudonym key, seed refuses and writes no key file.
	withMaster := map[string]string{"VERDICT_DATABASE_URL": dbURL, "VERDICT_MASTER_KEY": seeded["VERDICT_MASTER_KEY"]}
	if _, _, err := runArgs(t, withMaster, "seed", "--decisions", "20", "--seed", "3", "--data-dir", data); err == nil || !strings.Contains(err.Error(), "this is not the pseudonym key") {
		t.Fatalf("seed with another pseudonym key: %v", err)
	}
	if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused seed left %s", data)
	}
	// A seed that succeeds writes the key files it made (here: the pseudonym key, on a
	// fresh schema).
	dbURL2, _ := migratedSchema(t, "t_keyfiles2")
	if _, _, err := runArgs(t, map[string]string{"VERDICT_DATABASE_URL": dbURL2, "VERDICT_MASTER_KEY": seeded["VERDICT_MASTER_KEY"]},
		"seed", "--decisions", "20", "--data-dir", data); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(data, "pseudonym.key")); err != nil {
		t.Fatalf("seed did not keep the pseudonym key it used: %v", err)
	}
	if _, err := os.Stat(filepath.Join(data, "master.key")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("seed wrote master.key with VERDICT_MASTER_KEY set: %v", err)
	}
}
