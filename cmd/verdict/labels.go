package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	httpapi "github.com/verdict-engine/verdict/adapters/http"
	"github.com/verdict-engine/verdict/store"
)

const labelsUsage = `Usage:
  verdict labels import [--actor NAME] [--data-dir DIR] FILE.csv
      attach outcome labels to stored decisions. FILE.csv has a header row
      decision_id,label,tags; label is fraud, chargeback, legit or false_positive; tags are
      separated by | inside their field. The whole file is checked first (a bad line or an
      unknown decision imports nothing), then written 200 labels per transaction so that a
      running server's decisions are not held up; after a failure part-way, importing the
      same file again is safe. The store is VERDICT_DATABASE_URL (Postgres) or the
      embedded store in --data-dir.
`

// runLabels is "verdict labels": import outcome labels from CSV.
func runLabels(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, labelsUsage)
		return usageError{msg: "labels: missing subcommand (import)"}
	}
	if args[0] != "import" {
		fmt.Fprint(stderr, labelsUsage)
		return usageError{msg: fmt.Sprintf("labels: unknown subcommand %q", args[0])}
	}
	fs := newFlagSet("labels import", stderr)
	var cfg backendConfig
	backendFlags(fs, &cfg, getenv)
	actor := fs.String("actor", "cli", "who labels, recorded on the labels and in the audit log")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fmt.Fprint(stderr, labelsUsage)
		return usageError{msg: fmt.Sprintf("labels import: want exactly one CSV file, got %d arguments", len(pos))}
	}
	path := pos[0]
	if *actor == "" || !printableText(*actor) {
		return usageError{msg: "labels import: --actor must be printable text"}
	}

	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("labels import: %w", err)
	}
	defer f.Close()
	labels, lines, err := httpapi.ParseLabelsCSVLines(f, *actor)
	var ce *httpapi.LabelsCSVError
	if errors.As(err, &ce) {
		return fmt.Errorf("labels import: %s:%d: %s; nothing was imported", path, ce.Line, ce.Reason)
	}
	if err != nil {
		return fmt.Errorf("labels import: %s: %w", path, err)
	}

	st, err := openExistingStore(ctx, cfg)
	if err != nil {
		return fmt.Errorf("labels import: %w", err)
	}
	defer st.Close()
	var b [8]byte
	_, _ = rand.Read(b[:])
	created, err := store.ImportLabels(ctx, st, labels, "cli-labels-"+hex.EncodeToString(b[:]), store.LabelImportChunk)
	if partial := (*store.ImportError)(nil); errors.As(err, &partial) {
		return fmt.Errorf("labels import: %s: %w; importing the same file again is safe (stored labels are replaced, not duplicated)", path, err)
	}
	if errors.Is(err, store.ErrNotFound) {
		if line := httpapi.UnknownDecisionLine(labels, lines, err); line > 0 {
			return fmt.Errorf("labels import: %s:%d: no decision with this id; nothing was imported", path, line)
		}
	}
	if err != nil {
		return fmt.Errorf("labels import: %s: %w; nothing was imported", path, err)
	}
	fmt.Fprintf(stdout, "imported %d labels (%d new) from %s into the %s store\n", len(labels), created, path, st.kind)
	return nil
}

func printableText(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return false
		}
	}
	return true
}
