//go:build linux

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// config is the run's settings; short and full mode differ only in durations and rounds.
type config struct {
	short      bool
	out        string
	sequential bool
	keepTmp    bool
	floor      bool   // also measure bench/floor -fsync
	command    string // how the run was started, for the report

	measure time.Duration // measured window of each measurement
	warmup  time.Duration // same load before each window, not measured
	rounds  int           // repetitions of every measurement, merged in the report
	settle  time.Duration // pause between measurements
	conns   []int         // saturation: closed-loop connection counts, each measured
	bodies  int           // distinct request bodies per target
	probe   int           // requests of the outcome check
}

func parseFlags(argv []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&c.short, "short", false, "quick run (under 2 minutes): 4 s per measurement, 1 s warm-up, 1 round")
	fs.StringVar(&c.out, "out", "bench/results", "directory for results.json and results.md")
	fs.BoolVar(&c.sequential, "sequential", false, "run one target at a time from start to stop instead of interleaving measurements")
	fs.BoolVar(&c.keepTmp, "keep-tmp", false, "keep the temporary directory (binaries, server logs, data), the Postgres schema and the Redis database")
	fs.BoolVar(&c.floor, "floor", false, "also measure bench/floor -fsync, a server that only syncs 4 KB and answers: the host's floor under a durable answer")
	measure := fs.Duration("measure", 0, "override the measured window of each measurement")
	rounds := fs.Int("rounds", 0, "override the number of rounds")
	conns := fs.String("conns", "32,128", "saturation: closed-loop connection counts to measure, comma-separated; the peak is reported")
	err := fs.Parse(argv[1:])
	if err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	c.bodies, c.probe, c.settle = 1<<15, 200, 300*time.Millisecond
	if c.conns, err = parseConns(*conns); err != nil {
		return c, err
	}
	if c.short {
		c.measure, c.warmup, c.rounds = 4*time.Second, time.Second, 1
	} else {
		c.measure, c.warmup, c.rounds = 10*time.Second, 2*time.Second, 2
	}
	if *measure != 0 {
		if *measure < time.Second || *measure > 2*time.Minute {
			return c, errors.New("-measure must be within [1s, 2m]")
		}
		c.measure = *measure
	}
	if *rounds != 0 {
		if *rounds < 1 || *rounds > 5 {
			return c, errors.New("-rounds must be within [1, 5]")
		}
		c.rounds = *rounds
	}
	c.command = commandLine(argv)
	return c, nil
}

// parseConns reads -conns: distinct counts within [1, 1024], kept in the order given.
func parseConns(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 1024 {
			return nil, fmt.Errorf("-conns: %q is not a connection count within [1, 1024]", f)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("-conns: give at least one connection count")
	}
	return out, nil
}

// commandLine reconstructs the command for the report: `go run` runs a binary from the
// build cache, whose path means nothing to a reader.
func commandLine(argv []string) string {
	name := argv[0]
	if strings.Contains(name, "go-build") || filepath.Base(name) == "compare" {
		name = "go run ./bench/compare"
	}
	return strings.TrimSpace(name + " " + strings.Join(argv[1:], " "))
}
