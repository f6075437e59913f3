package main

import (
	"context"
	"fmt"
	"io"
)

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", stderr)
	var cfg backendConfig
	backendFlags(fs, &cfg, getenv)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer st.Close()
	if st.migrate == nil {
		fmt.Fprintf(stdout, "embedded store is up to date (it migrates itself when opened): %s\n", st.kind)
		return nil
	}
	from, to, err := st.migrate(ctx)
	if err != nil {
		return err // it says "migrate: ..."
	}
	fmt.Fprintln(stdout, "postgres: "+migrated(from, to))
	return nil
}
