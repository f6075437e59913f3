//go:build linux

// Command compare produces Verdict's published performance figures side by side with
// its peer, OPA, in one run on one machine:
//
//	go run ./bench/compare [-short] [-out bench/results]
//
// It builds ./cmd/verdict and OPA (from this module's go.mod) into a temporary
// directory and starts three targets on 127.0.0.1:
//
//   - opa: `opa run --server` on a copy of policies/bundle without its tests. It only
//     evaluates the policy: each input already holds the signals Verdict would gather.
//   - verdict-embedded: `verdict serve --dev` with the embedded store in a fresh data
//     directory and in-process velocity counters; decisions are durably written.
//   - verdict-redis-postgres: the same against Postgres (schema verdict_bench, dropped
//     and recreated) and Redis (database 15, flushed); both are emptied again at the end
//     unless -keep-tmp.
//
// For each target it measures throughput at saturation (closed loop, at 32 and then 128
// connections, -conns; the peak is the target's figure) and p50/p99/p999 at fixed rates (open loop, latency from each request's scheduled
// time), with the server's CPU seconds per 1,000 requests and its peak RSS. The targets
// are measured one at a time, interleaved measurement by measurement in a rotating
// order, so drift in the machine's load spreads over all of them; ratios are computed
// within the run. It writes results.json and results.md to -out and prints the Markdown.
//
// It runs on Linux only: it reads CPU time and peak RSS from /proc.
//
// A target that fails to start is reported and the run continues with the others. Every
// server is stopped on exit, including on Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(os.Stderr, "compare: interrupted; servers stopped")
		os.Exit(130)
	default:
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(argv, stderr)
	if err != nil {
		return err
	}
	h, err := newHarness(cfg, stderr)
	if err != nil {
		return err
	}
	defer h.close()
	rep, err := h.run(ctx)
	if err != nil {
		return err
	}
	md, err := rep.write(cfg.out)
	if err != nil {
		return err
	}
	_, err = io.WriteString(stdout, md)
	return err
}
