package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/verdict-engine/verdict/adapters/vault"
	"github.com/verdict-engine/verdict/engine/pii"
	"github.com/verdict-engine/verdict/store"
)

// openVault builds the vault and the IP pseudonymizer from the environment:
//
//   - VERDICT_MASTER_KEY: the master keys that wrap subjects' data keys,
//     "ID:BASE64[,ID:BASE64...]" (the first wraps new keys; the others only unwrap keys
//     not yet rewrapped by `verdict keys rotate`), or one BASE64 key; default: a key
//     file made once in the data directory (master.key, mode 0600).
//   - VERDICT_PSEUDONYM_KEY: base64 of the 32-byte HMAC key IP addresses in stored
//     decision snapshots are pseudonymised with; default: pseudonym.key in the data dir.
//
// It checks the master keys against the subject keys already stored (vault.CheckRing), so
// that a process given another master key than the store's refuses to start.
func openVault(ctx context.Context, dataDir string, getenv func(string) string, st store.SubjectKeys, production bool, log *slog.Logger) (*vault.Vault, *pii.Pseudonymizer, error) {
	var pending []newKeyFile
	v, ps, err := openVaultKeys(ctx, dataDir, getenv, st, production, log, &pending)
	if err != nil {
		return nil, nil, err
	}
	if err := writeKeyFiles(pending); err != nil {
		return nil, nil, err
	}
	return v, ps, nil
}

// openVaultKeys is openVault without writing the key files it makes keys for: they are added
// to pending, for the caller to write (writeKeyFiles) once nothing can refuse the command.
func openVaultKeys(ctx context.Context, dataDir string, getenv func(string) string, st store.SubjectKeys, production bool, log *slog.Logger, pending *[]newKeyFile) (*vault.Vault, *pii.Pseudonymizer, error) {
	v, err := openKeyVault(ctx, dataDir, getenv, st, pending)
	if err != nil {
		return nil, nil, err
	}
	pk, err := keyOrNew(getenv("VERDICT_PSEUDONYM_KEY"), filepath.Join(dataDir, "pseudonym.key"), 32, pending)
	if err != nil {
		return nil, nil, fmt.Errorf("VERDICT_PSEUDONYM_KEY: %w", err)
	}
	ps, err := pii.NewPseudonymizer(pk)
	if err != nil {
		return nil, nil, err
	}
	if production && log != nil {
		if getenv("VERDICT_MASTER_KEY") == "" {
			log.Warn("VERDICT_MASTER_KEY is not set: subjects' data keys are wrapped with a key file in the data directory; set it from your secret store in production")
		}
		if getenv("VERDICT_PSEUDONYM_KEY") == "" {
			log.Warn("VERDICT_PSEUDONYM_KEY is not set: IP pseudonyms use a key file in the data directory; set it from your secret store so every replica uses the same key")
		}
	}
	return v, ps, nil
}

// keyFileNote says, for an error about a key read from a file because its variable is not
// set, which file that is, or that there is none (the key was made for a file not yet
// written, so it cannot be the key the store knows).
func keyFileNote(variable, dataDir, name string) string {
	file, _ := filepath.Abs(filepath.Join(dataDir, name))
	if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
		return variable + " is not set, and there is no key file " + file
	}
	if name == "master.key" {
		return variable + " is not set, so the master key is the file " + file
	}
	return variable + " is not set, and the key file " + file
}

// pseudonymCheckLabel is pseudonymised to make the pseudonym key's check value.
const pseudonymCheckLabel = "verdict/v1 pseudonym key check"

// checkPseudonymKey compares the pseudonym key's check value (the pseudonym of a fixed
// label) with the one the store recorded when a server first started on it, recording it if
// none is: a server with another key would write pseudonyms no other replica's match. Only
// servers and seed call it: a command that writes no pseudonyms must not record its own key.
func checkPseudonymKey(ctx context.Context, ps *pii.Pseudonymizer, st store.KeyChecks, dataDir string, getenv func(string) string) error {
	check := []byte(ps.IP(pseudonymCheckLabel))
	stored, err := st.ClaimKeyCheck(ctx, "pseudonym", check)
	if err != nil {
		return fmt.Errorf("check the pseudonym key: %w", err)
	}
	if bytes.Equal(stored, check) {
		return nil
	}
	where := "VERDICT_PSEUDONYM_KEY"
	if getenv("VERDICT_PSEUDONYM_KEY") == "" {
		where = keyFileNote(where, dataDir, "pseudonym.key")
	}
	return fmt.Errorf("%s: this is not the pseudonym key the store's first server recorded: "+
		"IP pseudonyms would not match theirs; give every server the same key", where)
}

// checkMasterKeys records the master keys' check values for the other servers to match, or
// matches those recorded (vault.ClaimRing): two servers started on an empty store with
// different keys under one id pass CheckRing. Servers and seed call it, like
// checkPseudonymKey, once the start cannot fail otherwise.
func checkMasterKeys(ctx context.Context, v *vault.Vault, st store.KeyChecks, dataDir string, getenv func(string) string) error {
	if err := v.ClaimRing(ctx, st); err != nil {
		if getenv("VERDICT_MASTER_KEY") == "" {
			return fmt.Errorf("%w (%s)", err, keyFileNote("VERDICT_MASTER_KEY", dataDir, "master.key"))
		}
		return fmt.Errorf("VERDICT_MASTER_KEY: %w", err)
	}
	return nil
}

// openKeyVault builds the vault alone, checked against the stored subject keys: what a
// command that seals or rewraps but writes no pseudonyms needs (it must not create a
// pseudonym key file it never uses).
func openKeyVault(ctx context.Context, dataDir string, getenv func(string) string, st store.SubjectKeys, pending *[]newKeyFile) (*vault.Vault, error) {
	ring, err := masterRing(dataDir, getenv, pending)
	if err != nil {
		return nil, err
	}
	v := vault.New(ring, st)
	if err := v.CheckRing(ctx); err != nil {
		if getenv("VERDICT_MASTER_KEY") == "" {
			return nil, fmt.Errorf("%w (%s)", err, keyFileNote("VERDICT_MASTER_KEY", dataDir, "master.key"))
		}
		return nil, fmt.Errorf("VERDICT_MASTER_KEY: %w", err)
	}
	return v, nil
}

// masterRing reads the master keys from VERDICT_MASTER_KEY, or else from the key file
// master.key in dataDir, making a key for it (added to pending) when there is none.
func masterRing(dataDir string, getenv func(string) string, pending *[]newKeyFile) (*vault.Ring, error) {
	if v := getenv("VERDICT_MASTER_KEY"); v != "" {
		r, err := vault.ParseRing(v)
		if err != nil {
			return nil, fmt.Errorf("VERDICT_MASTER_KEY: %w", err)
		}
		return r, nil
	}
	k, err := keyOrNew("", filepath.Join(dataDir, "master.key"), 32, pending)
	if err != nil {
		return nil, fmt.Errorf("master key file: %w", err)
	}
	return vault.NewRing("1", k)
}

const keysUsage = `Usage:
  verdict keys rotate [flags]   rewrap every subject key under the first key of VERDICT_MASTER_KEY

Put the new master key first in VERDICT_MASTER_KEY (NEW_ID:BASE64,OLD_ID:BASE64), restart
the servers, run rotate, then remove the old key everywhere and destroy it: backups taken
before an erasure can no longer be decrypted once the key their wrapped keys were under is
gone.
`

func runKeys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rotate" {
		fmt.Fprint(stderr, keysUsage)
		if len(args) == 0 {
			return usageError{msg: "keys: missing subcommand (rotate)"}
		}
		return usageError{msg: fmt.Sprintf("keys: unknown subcommand %q", args[0])}
	}
	fs := newFlagSet("keys rotate", stderr)
	var cfg backendConfig
	backendFlags(fs, &cfg, getenv)
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	st, err := openExistingStore(ctx, cfg)
	if err != nil {
		return fmt.Errorf("keys rotate: %w", err)
	}
	defer st.Close()
	// Rotation rewraps under keys that exist: a key file made now would wrap nothing the
	// store holds, and it is never written (a refused rotate leaves no file behind).
	var pending []newKeyFile
	v, err := openKeyVault(ctx, cfg.dataDir, getenv, st, &pending)
	if err != nil {
		return fmt.Errorf("keys rotate: %w", err)
	}
	if len(pending) > 0 {
		return fmt.Errorf("keys rotate: no master key: %s; put the new key first in VERDICT_MASTER_KEY (NEW_ID:BASE64,OLD_ID:BASE64), or give the --data-dir whose master.key the servers use",
			keyFileNote("VERDICT_MASTER_KEY", cfg.dataDir, "master.key"))
	}
	n, err := v.Rewrap(ctx)
	if err != nil {
		return fmt.Errorf("keys rotate: %d keys rewrapped before: %w", n, err)
	}
	fmt.Fprintf(stdout, "%d subject keys rewrapped\n", n)
	return nil
}

// runErase is `verdict erase USER_ID`: crypto-shredding of one subject, as DELETE
// /v1/subjects/{user_id} does it. It prints what was destroyed as JSON.
func runErase(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("erase", stderr)
	var cfg backendConfig
	backendFlags(fs, &cfg, getenv)
	actor := fs.String("actor", envOr(getenv, "USER", "cli"), "who asks for the erasure, for the audit event")
	// Flags may come before or after the id; an id that starts with "-" follows "--".
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] == "" || len(pos[0]) > 256 {
		return usageError{msg: fmt.Sprintf("erase: want one USER_ID (1 to 256 bytes), got %d arguments: verdict erase [flags] [--] USER_ID", len(pos))}
	}
	userID := pos[0]
	st, err := openExistingStore(ctx, cfg)
	if err != nil {
		return fmt.Errorf("erase: %w", err)
	}
	defer st.Close()
	if cfg.databaseURL == "" {
		// A server on this directory would keep the key in its sealing cache for up to a
		// minute and seal its next decisions of the subject under it (unreadable data):
		// the erasure goes through that server, which forgets the key at once.
		release, err := lockDataDir(cfg.dataDir)
		var inUse *dataDirInUseError
		if errors.As(err, &inUse) {
			return fmt.Errorf("erase: a verdict serve%s runs on %s: erase through it (DELETE /v1/subjects/{user_id}, scope admin), which drops the key from its cache at once, or stop it first", inUse.holder, inUse.dir)
		}
		if err != nil {
			return fmt.Errorf("erase: %w", err)
		}
		defer release()
	}
	ev, err := openEvidenceForDeletion(ctx, cfg.dataDir, getenv)
	if err != nil {
		return fmt.Errorf("erase: %w", err)
	}
	defer ev.Close()
	host, _ := os.Hostname()
	e, err := vault.New(nil, st).Erase(ctx, userID, *actor, "cli-erase@"+host, ev)
	if err != nil {
		return fmt.Errorf("erase: %w", err)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(e); err != nil {
		return err
	}
	if e.EvidenceFailed > 0 {
		// The erasure itself is done (the key is destroyed); say why objects are left, which
		// the counts alone do not.
		fmt.Fprintf(stderr, "verdict: erase: warning: %d evidence objects not deleted (%v); they stay sealed under the destroyed key and listed on their sessions: erase again to delete them\n",
			e.EvidenceFailed, e.EvidenceErr)
	}
	return nil
}
