package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verdict-engine/verdict/adapters/evidence"
	httpapi "github.com/verdict-engine/verdict/adapters/http"
	"github.com/verdict-engine/verdict/adapters/providers"
	"github.com/verdict-engine/verdict/adapters/providers/onfido"
	"github.com/verdict-engine/verdict/adapters/providers/persona"
	"github.com/verdict-engine/verdict/adapters/providers/sandbox"
	"github.com/verdict-engine/verdict/adapters/providers/sumsub"
	"github.com/verdict-engine/verdict/adapters/providers/veriff"
	"github.com/verdict-engine/verdict/adapters/retention"
	"github.com/verdict-engine/verdict/adapters/vault"
	"github.com/verdict-engine/verdict/adapters/verification"
	"github.com/verdict-engine/verdict/store"
)

// verificationSetup builds the verification subsystem from the environment:
//
//   - VERDICT_PUBLIC_URL: the base URL providers and clients reach this server on
//     (default http://127.0.0.1:<port>), for webhook callbacks and local upload URLs.
//   - VERDICT_EVIDENCE_URL: evidence bucket (s3://..., gs://...); default: the directory
//     <data-dir>/evidence, uploads received by this server on URLs signed with
//     VERDICT_EVIDENCE_SIGNING_KEY (default: a key file evidence-url.key in the data dir).
//   - VERDICT_VERIFICATION_TTL: how long a session may stay unfinished (default 72h).
//   - VERDICT_<VENDOR>_...: each vendor's credentials and webhook secrets; a vendor with
//     none configured is off.
//   - VERDICT_SANDBOX=1 (or --dev): the sandbox provider, which approves by itself
//     VERDICT_SANDBOX_DELAY after a submission (default 1s).
type verificationSetup struct {
	svc     *verification.Service
	sandbox *sandbox.Provider
	close   func()
}

func setupVerifications(ctx context.Context, cfg serveConfig, getenv func(string) string, st store.Store, v *vault.Vault, retain *retention.Policies, reg prometheus.Registerer, log *slog.Logger) (*verificationSetup, error) {
	public := strings.TrimRight(getenv("VERDICT_PUBLIC_URL"), "/")
	if public == "" {
		_, port, err := net.SplitHostPort(cfg.addr)
		if err != nil || port == "" {
			port = "8080"
		}
		public = "http://127.0.0.1:" + port
	} else if pu, err := url.Parse(public); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || pu.User != nil ||
		pu.RawQuery != "" || pu.ForceQuery || strings.Contains(public, "#") || !validPort(pu.Port()) {
		// Callback and upload URLs are built by appending paths to it: a query or a
		// fragment would swallow them.
		return nil, usageError{msg: "serve: VERDICT_PUBLIC_URL must be an absolute http(s) URL without credentials, query or fragment"}
	}
	var err error
	ttl := 72 * time.Hour
	if v := getenv("VERDICT_VERIFICATION_TTL"); v != "" {
		if ttl, err = positiveDuration("VERDICT_VERIFICATION_TTL", v); err != nil {
			return nil, err
		}
	}

	var ev *evidence.Store
	if u := getenv("VERDICT_EVIDENCE_URL"); u != "" {
		if ev, err = evidence.Open(ctx, u, 0); err != nil {
			return nil, fmt.Errorf("serve: VERDICT_EVIDENCE_URL: %w", err)
		}
	} else {
		signKey, err := keyFrom(getenv("VERDICT_EVIDENCE_SIGNING_KEY"), filepath.Join(cfg.dataDir, "evidence-url.key"), 32)
		if err != nil {
			return nil, fmt.Errorf("serve: VERDICT_EVIDENCE_SIGNING_KEY: %w", err)
		}
		uploadURL, _ := url.Parse(public + httpapi.EvidenceUploadPath)
		if ev, err = evidence.OpenLocal(filepath.Join(cfg.dataDir, "evidence"), uploadURL, signKey, 0); err != nil {
			return nil, fmt.Errorf("serve: %w", err)
		}
	}

	var ps []providers.Provider
	for _, open := range []func(func(string) string) (providers.Provider, error){
		func(g func(string) string) (providers.Provider, error) { return nilable(onfido.FromEnv(g)) },
		func(g func(string) string) (providers.Provider, error) { return nilable(persona.FromEnv(g)) },
		func(g func(string) string) (providers.Provider, error) { return nilable(sumsub.FromEnv(g)) },
		func(g func(string) string) (providers.Provider, error) { return nilable(veriff.FromEnv(g)) },
	} {
		p, err := open(getenv)
		if err != nil {
			ev.Close()
			return nil, usageError{msg: "serve: " + err.Error()}
		}
		if p != nil {
			ps = append(ps, p)
		}
	}
	var sbx *sandbox.Provider
	sandboxOn, err := envBool(getenv, "VERDICT_SANDBOX")
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(getenv("VERDICT_SANDBOX")) == "" {
		sandboxOn = cfg.dev // on by default with --dev; VERDICT_SANDBOX=0 turns it off there too
	}
	if sandboxOn {
		delay := time.Second
		if v := getenv("VERDICT_SANDBOX_DELAY"); v != "" {
			if delay, err = positiveDuration("VERDICT_SANDBOX_DELAY", v); err != nil {
				ev.Close()
				return nil, err
			}
		}
		secrets, err := providers.SecretsFromEnv(getenv("VERDICT_SANDBOX_WEBHOOK_SECRET"))
		if err != nil {
			return nil, usageError{msg: "serve: VERDICT_SANDBOX_WEBHOOK_SECRET " + err.Error()}
		}
		sbx = sandbox.New(sandbox.Config{Secrets: secrets, Delay: delay, Logger: log})
		ps = append(ps, sbx)
		log.Warn("the sandbox identity provider is on: it approves sessions by itself; never enable it in production")
	}

	webhooks := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "verdict_webhooks_total", Help: "Webhook deliveries by provider and result (applied, duplicate, stale, bad_signature, ...).",
	}, []string{"provider", "result"})
	transitions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "verdict_verification_transitions_total", Help: "Verification session status changes by provider and new status.",
	}, []string{"provider", "status"})
	reg.MustRegister(webhooks, transitions)

	svc := verification.New(verification.Config{
		TTL: ttl, CallbackBase: public, Logger: log,
		// New sessions fall under the retention file's default_policy; a client may name
		// another of its policies.
		RetentionPolicy: retain.DefaultPolicy, RetentionPolicies: retentionNames(retain),
		ObserveWebhook:    func(p, r string) { webhooks.WithLabelValues(p, r).Inc() },
		ObserveTransition: func(p, s string) { transitions.WithLabelValues(p, s).Inc() },
	}, st, ps, ev, v)
	names := svc.Providers()
	log.Info("verification providers", "providers", strings.Join(names, ","))
	return &verificationSetup{svc: svc, sandbox: sbx, close: func() {
		if sbx != nil {
			sbx.Close()
		}
		ev.Close()
	}}, nil
}

// nilable turns a typed nil provider into an untyped nil interface.
func nilable[P interface {
	providers.Provider
	comparable
}](p P, err error) (providers.Provider, error) {
	var zero P
	if err != nil || p == zero {
		return nil, err
	}
	return p, nil
}

// keyFrom decodes a base64 key of n bytes from value, or, when value is empty, reads the key
// file at path, creating it with a random key (mode 0600) if it does not exist.
func keyFrom(value, path string, n int) ([]byte, error) {
	var pending []newKeyFile
	k, err := keyOrNew(value, path, n, &pending)
	if err != nil || len(pending) == 0 {
		return k, err
	}
	err = writeKeyFile(pending[0])
	if errors.Is(err, os.ErrExist) { // another process made it first: use theirs
		return keyFrom("", path, n)
	}
	if err != nil {
		return nil, err
	}
	return k, nil
}

// newKeyFile is a key made for a key file that does not exist yet.
type newKeyFile struct {
	path string
	key  []byte
}

// keyOrNew decodes a base64 key of n bytes from value, or, when value is empty, reads the key
// file at path. When there is no such file it makes a random key and appends it to pending,
// for writeKeyFiles to write once the command has passed the checks that may refuse it: a
// refused command leaves no key file behind, nor a data directory made for one.
func keyOrNew(value, path string, n int, pending *[]newKeyFile) ([]byte, error) {
	if value != "" {
		k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(value))
		if err != nil || len(k) != n {
			return nil, fmt.Errorf("want base64 of %d bytes (openssl rand -base64 %d)", n, n)
		}
		return k, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		k := make([]byte, n)
		if _, err := rand.Read(k); err != nil {
			return nil, err
		}
		*pending = append(*pending, newKeyFile{path: path, key: k})
		return k, nil
	}
	if err != nil {
		return nil, err
	}
	return keyOrNew(strings.TrimSpace(string(b)), "", n, pending)
}

// writeKeyFile creates f's file (mode 0600, its directory 0700 if missing); it fails with an
// error wrapping os.ErrExist when the file exists.
func writeKeyFile(f newKeyFile) error {
	if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
		return err
	}
	return writeNew(f.path, []byte(base64.StdEncoding.EncodeToString(f.key)+"\n"), 0o600)
}

// writeKeyFiles writes the key files keyOrNew made keys for. A file another process created
// meanwhile is accepted if it holds the same key, and refused otherwise: this process has
// already used its own.
func writeKeyFiles(pending []newKeyFile) error {
	for _, f := range pending {
		err := writeKeyFile(f)
		if errors.Is(err, os.ErrExist) {
			theirs, rerr := keyOrNew("", f.path, len(f.key), new([]newKeyFile))
			if rerr == nil && bytes.Equal(theirs, f.key) {
				continue
			}
			return fmt.Errorf("key file %s was created by another process meanwhile: run again", f.path)
		}
		if err != nil {
			return fmt.Errorf("write key file: %w", err)
		}
	}
	return nil
}

// retentionNames lists the policies of a retention file.
func retentionNames(ps *retention.Policies) []string {
	names := make([]string, 0, len(ps.Policies))
	for _, p := range ps.Policies {
		names = append(names, p.Name)
	}
	return names
}

// validPort reports whether p is empty (the scheme's port) or a TCP port number.
func validPort(p string) bool {
	if p == "" {
		return true
	}
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535
}
