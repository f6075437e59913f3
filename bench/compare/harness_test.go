//go:build linux

package main

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verdict-engine/verdict/bench/load"
)

func TestOrderIsFair(t *testing.T) {
	h := &harness{targets: []*target{{name: "a"}, {name: "b"}, {name: "c"}}}
	first := map[string]int{}
	for round := 1; round <= 2; round++ {
		for i := range 3 {
			o := h.order(i, round)
			if len(o) != 3 {
				t.Fatalf("order(%d, %d) has %d targets", i, round, len(o))
			}
			first[o[0].name]++
		}
	}
	for _, n := range []string{"a", "b", "c"} {
		if first[n] != 2 {
			t.Errorf("%s runs first %d times in 6 measurements, want 2 (%v)", n, first[n], first)
		}
	}
}

func TestBringUpReportsATargetThatExits(t *testing.T) {
	h := &harness{log: io.Discard, tmp: t.TempDir()}
	tg := &target{
		name: "broken", format: load.FormatVerdict,
		bin:    func() string { return "/bin/sh" },
		args:   func(int) []string { return []string{"-c", "echo cannot open store >&2; exit 3"} },
		health: []string{"/healthz"},
	}
	h.targets = []*target{tg}
	h.bringUp(context.Background(), tg)
	if tg.err == nil || !strings.Contains(tg.err.Error(), "cannot open store") {
		t.Fatalf("err = %v, want the exit and the log tail", tg.err)
	}
	if tg.ok() {
		t.Error("a target that exited is ok")
	}
	// The run goes on: measuring it is a no-op.
	if err := h.measure(context.Background(), tg, kind{conns: 32}, 1); err != nil {
		t.Fatal(err)
	}
}

func TestReportShowsFailedTarget(t *testing.T) {
	h := &harness{log: io.Discard, cfg: config{short: true, conns: []int{32}, command: "go run ./bench/compare -short"}}
	h.targets = []*target{
		{name: "opa", rates: []int{500}, runs: map[string][]*measurement{}},
		{name: "verdict-embedded", rates: []int{500}, runs: map[string][]*measurement{}},
	}
	h.targets[1].err = errorString("not ready: exited (exit status 1); log tail:\n    boom")
	m := &measurement{Result: &load.Result{Mode: "closed", Conns: 32, Seconds: 4, Requests: 4000, OK: 4000, Throughput: 1000}}
	m.finish()
	h.targets[0].runs["saturation-32"] = []*measurement{m}
	r := h.report(&binaries{})
	md := r.markdown()
	for _, want := range []string{"| opa | 1,000 (32) |", "| verdict-embedded | **failed**: not ready", "boom", "go run ./bench/compare -short"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if _, err := r.write(filepath.Join(t.TempDir(), "out")); err != nil {
		t.Fatal(err)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

func TestReportTakesThePeakSaturation(t *testing.T) {
	h := &harness{log: io.Discard, cfg: config{conns: []int{32, 128}, command: "go run ./bench/compare"}}
	sat := func(conns int, rps float64) []*measurement {
		m := &measurement{Result: &load.Result{Mode: "closed", Conns: conns, Seconds: 10, Requests: int64(rps * 10), OK: int64(rps * 10), Throughput: rps}}
		m.finish()
		return []*measurement{m}
	}
	h.targets = []*target{
		{name: "opa", runs: map[string][]*measurement{"saturation-32": sat(32, 1000), "saturation-128": sat(128, 900)}},
		{name: "verdict-embedded", runs: map[string][]*measurement{"saturation-32": sat(32, 800), "saturation-128": sat(128, 1500)}},
	}
	r := h.report(&binaries{})
	md := r.markdown()
	for _, want := range []string{"| opa | 1,000 (32) |", "| verdict-embedded | 1,500 (128) |", "| verdict-embedded | 800; ", "32, 128 of them in turn"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if len(r.Ratios) == 0 || r.Ratios[0].Metric != "saturation throughput" || r.Ratios[0].Value != 1.5 {
		t.Errorf("ratios = %+v, want saturation throughput 1.5 (peak over peak)", r.Ratios)
	}
}

func TestFloorIsReportedButNotRatioed(t *testing.T) {
	h := &harness{log: io.Discard, cfg: config{conns: []int{32}, command: "go run ./bench/compare -floor"}}
	sat := func(rps float64) []*measurement {
		m := &measurement{Result: &load.Result{Mode: "closed", Conns: 32, Seconds: 10, Requests: int64(rps * 10), OK: int64(rps * 10), Throughput: rps}}
		m.finish()
		return []*measurement{m}
	}
	h.targets = []*target{
		{name: "opa", runs: map[string][]*measurement{"saturation-32": sat(1000)}},
		{name: "verdict-embedded", runs: map[string][]*measurement{"saturation-32": sat(1200)}},
		{name: floorTarget, runs: map[string][]*measurement{"saturation-32": sat(7000)}},
	}
	r := h.report(&binaries{})
	for _, q := range r.Ratios {
		if q.Of != "verdict-embedded" {
			t.Errorf("ratio of %s over %s: only Verdict targets are compared with OPA", q.Of, q.Over)
		}
	}
	md := r.markdown()
	for _, want := range []string{"| floor-fsync | 7,000 (32) |", "floor-fsync decides nothing"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestFloorFlag(t *testing.T) {
	c, err := parseFlags([]string{"compare", "-short", "-floor"}, io.Discard)
	if err != nil || !c.floor {
		t.Fatalf("parseFlags -floor = %+v, %v", c.floor, err)
	}
	h := &harness{cfg: c, tmp: t.TempDir()}
	var names []string
	for _, tg := range h.defineTargets(&binaries{}, "bundle") {
		names = append(names, tg.name)
	}
	if got := strings.Join(names, ","); got != "opa,verdict-embedded,verdict-redis-postgres,floor-fsync" {
		t.Errorf("targets with -floor: %s", got)
	}
	h.cfg.floor = false
	if n := len(h.defineTargets(&binaries{}, "bundle")); n != 3 {
		t.Errorf("%d targets without -floor, want 3", n)
	}
}
