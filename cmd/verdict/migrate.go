package main

import (
	"context"
	"fmt"
	"io"

	"github.com/verdict-engine/verdict/store/sqlite"
)

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", stderr)
	var cfg backendConfig
	backendFlags(fs, &cfg, getenv)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// The embedded store migrates itself when opened; migrate may create it, and says so,
	// since a command run without the VERDICT_DATABASE_URL it meant lands here.
	existed, _, _ := sqlite.Exists(cfg.dataDir) // an unreadable directory fails in openStore
	st, err := openStore(ctx, cfg)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer st.Close()
	if st.migrate == nil {
		state := "is up to date (it migrates itself when opened)"
		if !existed {
			state = "created (no VERDICT_DATABASE_URL is set)"
		}
		fmt.Fprintf(stdout, "embedded store %s: %s\n", state, st.kind)
		return nil
	}
	announceStore(cfg, st) // which database and schema it is about to change
	from, to, err := st.migrate(ctx)
	if err != nil {
		return err // it says "migrate: ..."
	}
	fmt.Fprintln(stdout, "postgres: "+migrated(from, to))
	return nil
}
