package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/verdict-engine/verdict/store"
)

const auditUsage = `Usage:
  verdict audit verify [--checkpoint FILE --public-key FILE]   recompute the hash chain; name the first broken link
  verdict audit checkpoint --private-key FILE [--out FILE]       sign the current head (after verifying the chain)
  verdict audit keygen --out PREFIX                              write PREFIX.key (private, 0600) and PREFIX.pub
`

func runAudit(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return usageError{msg: "audit: missing subcommand (verify, checkpoint, keygen)"}
	}
	switch args[0] {
	case "verify":
		return runAuditVerify(ctx, args[1:], getenv, stdout, stderr)
	case "checkpoint":
		return runAuditCheckpoint(ctx, args[1:], getenv, stdout, stderr)
	case "keygen":
		return runAuditKeygen(args[1:], stdout, stderr)
	}
	fmt.Fprint(stderr, auditUsage)
	return usageError{msg: fmt.Sprintf("audit: unknown subcommand %q", args[0])}
}

func runAuditVerify(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("audit verify", stderr)
	var cfg backendConfig
	backendFlags(fs, &cfg, getenv)
	cpPath := fs.String("checkpoint", "", "signed checkpoint (JSON from `verdict audit checkpoint`) the log must still contain")
	pubPath := fs.String("public-key", "", "Ed25519 public key file of the checkpoint signer")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if (*cpPath == "") != (*pubPath == "") {
		return usageError{msg: "audit verify: --checkpoint and --public-key go together"}
	}
	st, err := openExistingStore(ctx, cfg)
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	defer st.Close()
	seq, head, err := store.VerifyChain(ctx, st)
	var broken *store.BrokenLinkError
	if errors.As(err, &broken) {
		return fmt.Errorf("audit verify: BROKEN at seq %d: %s", broken.Seq, broken.Reason)
	}
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	if *cpPath != "" {
		pub, err := readKey(*pubPath, ed25519.PublicKeySize, publicKeyHeader)
		if err != nil {
			return fmt.Errorf("audit verify: public key: %w", err)
		}
		raw, err := os.ReadFile(*cpPath)
		if err != nil {
			return fmt.Errorf("audit verify: %w", err)
		}
		var cp store.Checkpoint
		if err := json.Unmarshal(raw, &cp); err != nil {
			return fmt.Errorf("audit verify: %s: %v", *cpPath, err)
		}
		if err := store.VerifyCheckpoint(ctx, ed25519.PublicKey(pub), cp, st); err != nil {
			if errors.As(err, &broken) {
				return fmt.Errorf("audit verify: BROKEN at seq %d: %s", broken.Seq, broken.Reason)
			}
			return fmt.Errorf("audit verify: checkpoint: %w", err)
		}
		fmt.Fprintf(stdout, "checkpoint ok: seq %d signed %s is still in the chain\n", cp.Seq, cp.Time.Format(time.RFC3339))
	}
	if seq == 0 {
		// No head to show: an empty log (a store no server has written to yet).
		fmt.Fprintln(stdout, "audit chain ok: 0 events (the audit log is empty)")
		return nil
	}
	fmt.Fprintf(stdout, "audit chain ok: %d events, head %s\n", seq, hex.EncodeToString(head))
	return nil
}

func runAuditCheckpoint(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("audit checkpoint", stderr)
	var cfg backendConfig
	backendFlags(fs, &cfg, getenv)
	keyPath := fs.String("private-key", "", "Ed25519 private key file (from `verdict audit keygen`)")
	out := fs.String("out", "", "write the checkpoint here instead of stdout")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *keyPath == "" {
		return usageError{msg: "audit checkpoint: --private-key is required"}
	}
	seed, err := readKey(*keyPath, ed25519.SeedSize, privateKeyHeader)
	if err != nil {
		return fmt.Errorf("audit checkpoint: private key: %w", err)
	}
	st, err := openExistingStore(ctx, cfg)
	if err != nil {
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	defer st.Close()
	seq, head, err := store.VerifyChain(ctx, st)
	var broken *store.BrokenLinkError
	if errors.As(err, &broken) {
		return fmt.Errorf("audit checkpoint: refusing to sign a broken chain: seq %d: %s", broken.Seq, broken.Reason)
	}
	if err != nil {
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	cp := store.SignCheckpoint(ed25519.NewKeyFromSeed(seed), seq, head, time.Now())
	b, _ := json.MarshalIndent(cp, "", "  ")
	b = append(b, '\n')
	if *out == "" {
		_, err = stdout.Write(b)
		return err
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	fmt.Fprintf(stdout, "checkpoint at seq %d written to %s\n", seq, *out)
	return nil
}

func runAuditKeygen(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("audit keygen", stderr)
	prefix := fs.String("out", "", "path prefix: writes PREFIX.key and PREFIX.pub")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *prefix == "" {
		return usageError{msg: "audit keygen: --out is required"}
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("audit keygen: %w", err)
	}
	// Never over an existing pair: replacing it would orphan every checkpoint it signed
	// (verify would then report them as forged), and the old private key would be gone.
	for _, p := range []string{*prefix + ".key", *prefix + ".pub"} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("audit keygen: %s exists; keep the pair that signed your checkpoints, or choose another --out", p)
		}
	}
	if err := writeNew(*prefix+".key", []byte(privateKeyHeader+"\n"+base64.StdEncoding.EncodeToString(priv.Seed())+"\n"), 0o600); err != nil {
		return fmt.Errorf("audit keygen: %w", err)
	}
	if err := writeNew(*prefix+".pub", []byte(publicKeyHeader+"\n"+base64.StdEncoding.EncodeToString(pub)+"\n"), 0o644); err != nil {
		os.Remove(*prefix + ".key")
		return fmt.Errorf("audit keygen: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s.key (keep it secret, offline) and %s.pub\n", *prefix, *prefix)
	return nil
}

// writeNew creates path with perm (whatever the umask leaves of it) and data; it fails if
// path exists.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// The first line of the key files keygen writes: a seed and a public key are both 32
// bytes of base64, and signing with the public key as a seed makes checkpoints nobody can
// verify.
const (
	privateKeyHeader = "# verdict audit signing key (private): keep it offline"
	publicKeyHeader  = "# verdict audit verification key (public)"
)

// readKey reads a base64 key file of the given size. A file from keygen names its kind on
// its first line, and a key of the other kind is refused; a bare base64 key is accepted.
func readKey(path string, size int, want string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	text := strings.TrimSpace(string(raw))
	if first, rest, ok := strings.Cut(text, "\n"); ok && strings.HasPrefix(first, "#") {
		if other := map[string]string{privateKeyHeader: publicKeyHeader, publicKeyHeader: privateKeyHeader}[want]; strings.TrimSpace(first) == other {
			kind := "public"
			if other == privateKeyHeader {
				kind = "private"
			}
			return nil, fmt.Errorf("%s is the %s key of the pair", path, kind)
		}
		text = strings.TrimSpace(rest)
	}
	k, err := base64.StdEncoding.DecodeString(text)
	if err != nil || len(k) != size {
		return nil, fmt.Errorf("%s: not a base64 Ed25519 key of %d bytes", path, size)
	}
	return k, nil
}
