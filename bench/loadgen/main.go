// Command loadgen drives a Verdict (or OPA) server with the benchmark's request mix,
// either at a fixed rate (open loop: latency counts from each request's scheduled time,
// so a stalled server cannot hide its queue) or at saturation with N closed-loop
// connections, and prints throughput and p50/p99/p999 latency. See package bench/load;
// bench/compare runs the published comparison.
//
//	go run ./bench/loadgen -url http://127.0.0.1:8080/v1/decide -rate 1000 -duration 20s
//	go run ./bench/loadgen -url http://127.0.0.1:8080/v1/decide -conns 32 -duration 20s
//	go run ./bench/loadgen -format opa -url http://127.0.0.1:8181/v1/data/verdict/payout/decision -rate 1000
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/verdict-engine/verdict/bench/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:8080/v1/decide", "endpoint to POST to")
	format := fs.String("format", "verdict", "body format: verdict (decide request) or opa (OPA data API input with the signals)")
	rate := fs.Int("rate", 0, "requests per second (open loop); 0 = saturate with -conns")
	conns := fs.Int("conns", 32, "connections for saturation mode")
	workers := fs.Int("workers", 128, "open loop: most requests in flight")
	dur := fs.Duration("duration", 10*time.Second, "how long to measure")
	warmup := fs.Duration("warmup", 2*time.Second, "warm-up before measuring, same load")
	key := fs.String("key", "", "API key (Authorization: Bearer)")
	mix := load.DefaultMix()
	fs.StringVar(&mix.Action, "action", mix.Action, "action to decide")
	fs.IntVar(&mix.Users, "users", mix.Users, "distinct users")
	fs.Float64Var(&mix.Risky, "risky", mix.Risky, "share of risky requests")
	fs.Uint64Var(&mix.Seed, "seed", mix.Seed, "request mix seed")
	nBodies := fs.Int("bodies", 1<<15, "distinct request bodies generated up front")
	label := fs.String("label", "", "target label for the report")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err := load.ParseFormat(*format)
	if err != nil {
		return err
	}
	bodies, err := mix.Bodies(f, *nBodies)
	if err != nil {
		return err
	}
	t := load.Target{URL: *url, Bodies: load.NewBodies(bodies)}
	if *key != "" {
		t.Header = map[string]string{"Authorization": "Bearer " + *key}
	}
	var res *load.Result
	if *rate > 0 {
		res, err = load.OpenLoop{Rate: *rate, Workers: *workers, Warmup: *warmup, Duration: *dur}.Run(ctx, t)
	} else {
		res, err = load.ClosedLoop{Conns: *conns, Warmup: *warmup, Duration: *dur}.Run(ctx, t)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(struct {
			Label string `json:"label,omitempty"`
			*load.Result
		}{*label, res})
	}
	l := res.Latency
	fmt.Fprintf(stdout, "%s %s: %d requests (%d errors, %d missed) in %.1fs = %.0f/s; p50 %.3f ms, p99 %.3f ms, p999 %.3f ms, max %.3f ms\n",
		*label, res.Mode, res.Requests, res.Errors, res.Missed, res.Seconds, res.Throughput, l.P50, l.P99, l.P999, l.Max)
	if res.DispatchLag != nil {
		fmt.Fprintf(stdout, "generator lateness: p50 %.3f ms, p99 %.3f ms; most in flight %d of %d\n", res.DispatchLag.P50, res.DispatchLag.P99, res.MaxInFlight, res.Workers)
	}
	for _, s := range res.ErrorSamples {
		fmt.Fprintln(stdout, "error:", s)
	}
	return nil
}
