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
	if err := h.measure(context.Background(), tg, kind{0}, 1); err != nil {
		t.Fatal(err)
	}
}

func TestReportShowsFailedTarget(t *testing.T) {
	h := &harness{log: io.Discard, cfg: config{short: true, conns: 32, command: "go run ./bench/compare -short"}}
	h.targets = []*target{
		{name: "opa", rates: []int{500}, runs: map[string][]*measurement{}},
		{name: "verdict-embedded", rates: []int{500}, runs: map[string][]*measurement{}},
	}
	h.targets[1].err = errorString("not ready: exited (exit status 1); log tail:\n    boom")
	m := &measurement{Result: &load.Result{Mode: "closed", Conns: 32, Seconds: 4, Requests: 4000, OK: 4000, Throughput: 1000}}
	m.finish()
	h.targets[0].runs["saturation"] = []*measurement{m}
	r := h.report(&binaries{})
	md := r.markdown()
	for _, want := range []string{"| opa | 1,000 |", "| verdict-embedded | **failed**: not ready", "boom", "go run ./bench/compare -short"} {
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
