package main

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verdict-engine/verdict/adapters/retention"
)

// TestSandboxFollowsItsVariable: the sandbox provider is on by default with --dev, and
// VERDICT_SANDBOX says otherwise either way.
func TestSandboxFollowsItsVariable(t *testing.T) {
	for _, tc := range []struct {
		dev  bool
		env  string
		want bool
	}{{true, "", true}, {true, "0", false}, {true, "false", false}, {false, "1", true}, {false, "", false}} {
		dir := t.TempDir()
		ctx := context.Background()
		cfg := serveConfig{backendConfig: backendConfig{dataDir: dir}, addr: "127.0.0.1:0", dev: tc.dev}
		st, err := openStore(ctx, cfg.backendConfig)
		if err != nil {
			t.Fatal(err)
		}
		getenv := func(k string) string {
			if k == "VERDICT_SANDBOX" {
				return tc.env
			}
			return ""
		}
		v, _, err := openVault(ctx, dir, getenv, st, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		rp, err := retention.Load("")
		if err != nil {
			t.Fatal(err)
		}
		ver, err := setupVerifications(ctx, cfg, getenv, st, v, rp, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if got := ver.sandbox != nil; got != tc.want {
			t.Errorf("dev %v, VERDICT_SANDBOX=%q: sandbox %v, want %v", tc.dev, tc.env, got, tc.want)
		}
		ver.close()
		st.Close()
	}
}
