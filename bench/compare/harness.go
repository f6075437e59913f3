//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/verdict-engine/verdict/bench/load"
)

// target is one server under test and what was measured on it.
type target struct {
	name     string
	format   load.Format
	rates    []int
	services bool // uses Postgres and Redis: their CPU is reported with the server's
	bin      func() string
	args     func(port int) []string
	env      []string
	health   []string                    // paths that must answer 200 before measuring
	prepare  func(context.Context) error // run before the server starts
	cleanup  func(context.Context) error // run at the end if prepare ran (not with -keep-tmp)
	display  string                      // the command, for the report
	prepared bool

	port   int
	proc   *process
	bodies *load.Bodies
	err    error // why the target failed to start or stopped answering
	probe  map[string]int
	runs   map[string][]*measurement // by measurement key
	peakKB int64
}

func (t *target) base() string { return "http://127.0.0.1:" + strconv.Itoa(t.port) }

func (t *target) ok() bool { return t.err == nil && t.proc != nil }

// measurement is one measured window (or several rounds merged) with the CPU it cost.
type measurement struct {
	Round int `json:"round,omitempty"`
	*load.Result
	ServerCPUSeconds float64 `json:"server_cpu_s"`
	ServerCPUPer1k   float64 `json:"server_cpu_s_per_1k"`
	// ServicesCPUPer1k is the CPU of the Postgres and Redis processes (for the target
	// that uses them): whoever else uses those servers at the time is counted too.
	ServicesCPUPer1k *float64 `json:"services_cpu_s_per_1k,omitempty"`
	LoadgenCPUPer1k  float64  `json:"loadgen_cpu_s_per_1k"`
	// OtherCores is the CPU used outside the harness and its servers during the window,
	// in cores: other work on the machine that competed with the measurement.
	OtherCores float64 `json:"other_cores"`
	// IdleTargetsCores is the CPU the targets not under load used meanwhile, in cores.
	IdleTargetsCores float64 `json:"idle_targets_cores"`

	servicesCPU, loadgenCPU, otherCPU, idleCPU, wall float64
}

// kind is one measurement of the plan: saturation with conns closed-loop connections
// (rate 0), or a fixed rate.
type kind struct{ rate, conns int }

func (k kind) key() string {
	if k.rate == 0 {
		return "saturation-" + strconv.Itoa(k.conns)
	}
	return "rate-" + strconv.Itoa(k.rate)
}

func (k kind) String() string {
	if k.rate == 0 {
		return fmt.Sprintf("sat/%d", k.conns)
	}
	return fmt.Sprintf("%d/s", k.rate)
}

// harness runs the comparison.
type harness struct {
	cfg      config
	log      io.Writer
	root     string // module root
	tmp      string
	targets  []*target
	started  time.Time
	building time.Duration // of the run, spent compiling Verdict and OPA (minutes on a cold build cache)

	loadAvgStart string
}

func newHarness(cfg config, log io.Writer) (*harness, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "verdict-bench-")
	if err != nil {
		return nil, err
	}
	return &harness{cfg: cfg, log: log, root: root, tmp: tmp, started: time.Now()}, nil
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.log, "[%5.1fs] "+format+"\n", append([]any{time.Since(h.started).Seconds()}, args...)...)
}

// close stops every server and removes the temporary directory.
func (h *harness) close() {
	h.stopAll()
	if h.cfg.keepTmp {
		h.logf("kept %s, the benchmark's Postgres schema and Redis database", h.tmp)
		return
	}
	_ = os.RemoveAll(h.tmp)
	for _, t := range h.targets {
		if t.prepared && t.cleanup != nil {
			if err := t.cleanup(context.Background()); err != nil { // it bounds itself
				h.logf("%s: clean up: %v", t.name, err)
			}
		}
	}
}

func (h *harness) stopAll() {
	for _, t := range h.targets {
		if t.proc != nil {
			t.proc.stop()
		}
	}
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run from inside the verdict module (go run ./bench/compare)")
	}
	return filepath.Dir(gomod), nil
}

// run builds, starts, measures and stops every target and returns the report. It returns
// an error only when nothing can be measured or ctx is done.
func (h *harness) run(ctx context.Context) (*report, error) {
	h.loadAvgStart = loadAvg()
	h.logf("machine load average at start: %s", h.loadAvgStart)
	bins, err := h.build(ctx)
	if err != nil {
		return nil, err
	}
	bundle := filepath.Join(h.tmp, "opa-bundle")
	if err := copyBundle(filepath.Join(h.root, "policies", "bundle"), bundle); err != nil {
		return nil, fmt.Errorf("copy policy bundle for opa: %w", err)
	}
	h.targets = h.defineTargets(bins, bundle)

	mix := load.DefaultMix()
	pools := map[load.Format][][]byte{}
	for _, f := range []load.Format{load.FormatOPA, load.FormatVerdict} {
		if pools[f], err = mix.Bodies(f, h.cfg.bodies); err != nil {
			return nil, err
		}
	}
	for _, t := range h.targets {
		// Every target gets the same requests in the same order.
		t.bodies = load.NewBodies(pools[t.format])
		t.runs = map[string][]*measurement{}
	}

	var kinds []kind
	for _, c := range h.cfg.conns {
		kinds = append(kinds, kind{conns: c})
	}
	seen := map[int]bool{}
	for _, t := range h.targets {
		for _, r := range t.rates {
			if !seen[r] {
				seen[r] = true
				kinds = append(kinds, kind{rate: r})
			}
		}
	}
	if h.cfg.sequential {
		for _, t := range h.targets {
			h.bringUp(ctx, t)
			for round := 1; round <= h.cfg.rounds; round++ {
				for _, k := range kinds {
					if err := h.measure(ctx, t, k, round); err != nil {
						return nil, err
					}
				}
			}
			h.shutDown(t)
		}
	} else {
		for _, t := range h.targets {
			h.bringUp(ctx, t)
		}
		for round := 1; round <= h.cfg.rounds; round++ {
			for i, k := range kinds {
				for _, t := range h.order(i, round) {
					if err := h.measure(ctx, t, k, round); err != nil {
						return nil, err
					}
				}
			}
		}
		for _, t := range h.targets {
			h.shutDown(t)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return h.report(bins), nil
}

// order rotates the targets by measurement and reverses them every other round, so no
// target always runs first (on a cold cache) or right after another's heavy load.
func (h *harness) order(i, round int) []*target {
	n := len(h.targets)
	out := make([]*target, n)
	for j := range n {
		out[j] = h.targets[(i+round-1+j)%n]
	}
	if round%2 == 0 {
		for a, b := 0, n-1; a < b; a, b = a+1, b-1 {
			out[a], out[b] = out[b], out[a]
		}
	}
	return out
}

type binaries struct {
	verdict, opa, floor          string
	verdictErr, opaErr, floorErr error
	verdictVersion               string
	opaVersion                   string
}

// build compiles Verdict and OPA with the module's toolchain and dependencies. A failed
// build fails the targets that need it, not the run.
func (h *harness) build(ctx context.Context) (*binaries, error) {
	b := &binaries{verdict: filepath.Join(h.tmp, "verdict"), opa: filepath.Join(h.tmp, "opa"), floor: filepath.Join(h.tmp, "floor")}
	h.logf("building ./cmd/verdict and OPA into %s", h.tmp)
	start := time.Now()
	defer func() { h.building = time.Since(start) }()
	var wg sync.WaitGroup
	goBuild := func(out, pkg string) error {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
		cmd.Dir = h.root
		if msg, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", pkg, err, strings.TrimSpace(string(msg)))
		}
		return nil
	}
	wg.Go(func() { b.verdictErr = goBuild(b.verdict, "./cmd/verdict") })
	wg.Go(func() { b.opaErr = goBuild(b.opa, "github.com/open-policy-agent/opa") })
	if h.cfg.floor {
		wg.Go(func() { b.floorErr = goBuild(b.floor, "./bench/floor") })
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if b.verdictErr != nil && b.opaErr != nil {
		return nil, fmt.Errorf("nothing to measure:\n%v\n%v", b.verdictErr, b.opaErr)
	}
	if b.verdictErr == nil {
		b.verdictVersion = firstLine(exec.Command(b.verdict, "version").Output())
	}
	if b.opaErr == nil {
		b.opaVersion = strings.TrimPrefix(firstLine(exec.Command(b.opa, "version").Output()), "Version: ")
	}
	h.logf("built (verdict: %v, opa: %v)", errOrOK(b.verdictErr), errOrOK(b.opaErr))
	return b, nil
}

func errOrOK(err error) string {
	if err != nil {
		return "FAILED"
	}
	return "ok"
}

func firstLine(b []byte, err error) string {
	if err != nil {
		return "unknown"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return line
}

func (h *harness) defineTargets(b *binaries, bundle string) []*target {
	need := func(path string, err error) func() string {
		return func() string {
			if err != nil {
				return ""
			}
			return path
		}
	}
	addr := func(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
	embeddedDir := filepath.Join(h.tmp, "embedded-data")
	rpDir := filepath.Join(h.tmp, "redis-postgres-data")
	targets := []*target{
		{
			name: "opa", format: load.FormatOPA, rates: []int{500, 1000, 2000},
			bin: need(b.opa, b.opaErr),
			args: func(port int) []string {
				return []string{"run", "--server", "--addr", addr(port), "--log-level", "error", bundle}
			},
			health:  []string{"/health"},
			display: "opa run --server --addr 127.0.0.1:PORT --log-level error <policies/bundle without *_test.rego>",
		},
		{
			name: "verdict-embedded", format: load.FormatVerdict, rates: []int{500, 1000, 2000},
			bin: need(b.verdict, b.verdictErr),
			args: func(port int) []string {
				return []string{"serve", "--dev", "--addr", addr(port), "--data-dir", embeddedDir}
			},
			health:  []string{"/healthz", "/readyz"},
			display: "verdict serve --dev --addr 127.0.0.1:PORT --data-dir <fresh dir>",
		},
		{
			name: "verdict-redis-postgres", format: load.FormatVerdict, rates: []int{500, 1000, 2000, 3000},
			services: true,
			bin:      need(b.verdict, b.verdictErr),
			args: func(port int) []string {
				return []string{"serve", "--dev", "--addr", addr(port), "--data-dir", rpDir, "--migrate"}
			},
			env:     []string{"VERDICT_DATABASE_URL=" + postgresBenchURL, "VERDICT_REDIS_URL=" + redisBenchURL()},
			health:  []string{"/healthz", "/readyz"},
			prepare: resetServices,
			cleanup: dropServices,
			display: "VERDICT_DATABASE_URL=" + postgresBenchURL + " VERDICT_REDIS_URL=" + redisBenchURL() + " verdict serve --dev --addr 127.0.0.1:PORT --data-dir <fresh dir> --migrate",
		},
	}
	if h.cfg.floor {
		targets = append(targets, &target{
			name: floorTarget, format: load.FormatVerdict, rates: []int{500, 1000, 2000},
			bin: need(b.floor, b.floorErr),
			args: func(port int) []string {
				return []string{"-fsync", "-addr", addr(port), "-dir", h.tmp}
			},
			health:  []string{"/healthz"},
			display: "go run ./bench/floor -fsync -addr 127.0.0.1:PORT (a fixed answer after an fdatasync of 4 KB; decides nothing)",
		})
	}
	return targets
}

// floorTarget is bench/floor -fsync: no decision engine, so no ratio over OPA; what Verdict
// adds is its latency above this one's.
const floorTarget = "floor-fsync"

// bringUp prepares and starts t, waits until it is ready, checks that it decides, and
// warms it up. Failures are recorded on t.
func (h *harness) bringUp(ctx context.Context, t *target) {
	fail := func(format string, args ...any) {
		t.err = fmt.Errorf(format, args...)
		if ctx.Err() == nil {
			h.logf("%s FAILED: %v", t.name, t.err)
		}
		if t.proc != nil {
			t.proc.stop()
		}
	}
	bin := t.bin()
	if bin == "" {
		fail("not built (see the build error above)")
		return
	}
	if t.prepare != nil {
		t.prepared = true // a failed prepare may have left something behind too
		if err := t.prepare(ctx); err != nil {
			fail("prepare: %v", err)
			return
		}
	}
	port, err := freePort()
	if err != nil {
		fail("find a free port: %v", err)
		return
	}
	t.port = port
	if ctx.Err() != nil {
		fail("%v", ctx.Err())
		return
	}
	t.proc, err = startProcess(bin, t.args(port), t.env, h.tmp, filepath.Join(h.tmp, t.name+".log"))
	if err != nil {
		fail("start: %v", err)
		return
	}
	h.logf("%s started (pid %d, %s)", t.name, t.proc.pid(), t.base())
	if err := waitReady(ctx, t.proc, t.base(), t.health, 60*time.Second); err != nil {
		fail("not ready: %v", err)
		return
	}
	lt := t.loadTarget()
	t.probe, err = load.Probe(ctx, lt, t.format, h.cfg.probe)
	if err != nil {
		fail("does not decide: %v", err)
		return
	}
	_, err = load.ClosedLoop{Conns: h.cfg.conns[0], Duration: h.cfg.warmup}.Run(ctx, lt)
	if err != nil {
		fail("warm-up: %v", err)
		return
	}
	h.logf("%s ready; outcomes of the first %d requests: %s", t.name, h.cfg.probe, formatShares(load.Shares(t.probe)))
}

func (t *target) loadTarget() load.Target {
	return load.Target{URL: t.base() + t.format.Path(load.DefaultMix().Action), Bodies: t.bodies}
}

// shutDown records t's peak RSS and stops it.
func (h *harness) shutDown(t *target) {
	if t.proc == nil {
		return
	}
	if t.proc.alive() {
		if kb, err := kibField("/proc/"+strconv.Itoa(t.proc.pid())+"/status", "VmHWM"); err == nil {
			t.peakKB = kb
		}
	}
	t.proc.stop()
}

// cpuSnapshot is the CPU time used so far by the processes a measurement accounts for.
type cpuSnapshot struct {
	at       time.Time
	server   int64
	targets  int64 // every running target, idle ones included
	self     int64
	services map[string]int64
	busy     int64
}

func (h *harness) snapshot(server *target) cpuSnapshot {
	s := cpuSnapshot{at: time.Now()}
	for _, t := range h.targets {
		if t.proc == nil || !t.proc.alive() {
			continue
		}
		ticks, err := procCPUTicks(strconv.Itoa(t.proc.pid()))
		if err != nil {
			continue
		}
		s.targets += ticks
		if t == server {
			s.server = ticks
		}
	}
	s.self, _ = procCPUTicks("self")
	s.services = serviceTicks()
	s.busy, _ = systemBusyTicks()
	return s
}

// measure runs one measurement of k on t and records it. It returns an error only when
// ctx is done; a target that died is recorded as failed.
func (h *harness) measure(ctx context.Context, t *target, k kind, round int) error {
	if !t.ok() || (k.rate != 0 && !slices.Contains(t.rates, k.rate)) {
		return nil
	}
	if !t.proc.alive() {
		t.err = fmt.Errorf("died before the %s measurement: %v", k, t.proc.exitError())
		h.logf("%s FAILED: %v", t.name, t.err)
		return nil
	}
	var start, end cpuSnapshot
	observe := func(p load.Phase) {
		if p == load.PhaseMeasure {
			start = h.snapshot(t)
		} else {
			end = h.snapshot(t)
		}
	}
	var res *load.Result
	var err error
	if k.rate == 0 {
		res, err = load.ClosedLoop{Conns: k.conns, Warmup: h.cfg.warmup, Duration: h.cfg.measure, Observe: observe}.Run(ctx, t.loadTarget())
	} else {
		res, err = load.OpenLoop{Rate: k.rate, Warmup: h.cfg.warmup, Duration: h.cfg.measure, Observe: observe}.Run(ctx, t.loadTarget())
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	if err != nil {
		t.err = fmt.Errorf("%s: %v", k, err)
		h.logf("%s FAILED: %v", t.name, t.err)
		return nil
	}
	m := &measurement{Round: round, Result: res}
	if !start.at.IsZero() && !end.at.IsZero() {
		m.wall = end.at.Sub(start.at).Seconds()
		m.ServerCPUSeconds = float64(end.server-start.server) / clockTicks
		m.loadgenCPU = float64(end.self-start.self) / clockTicks
		svc := 0.0
		for pid, ticks := range end.services {
			svc += float64(ticks-start.services[pid]) / clockTicks
		}
		outside := float64(end.busy-start.busy)/clockTicks - float64(end.targets-start.targets)/clockTicks - m.loadgenCPU
		if t.services {
			m.servicesCPU = svc
			outside -= svc
		}
		m.otherCPU = max(0, outside)
		m.idleCPU = float64(end.targets-start.targets-(end.server-start.server)) / clockTicks
	}
	m.finish()
	t.runs[k.key()] = append(t.runs[k.key()], m)
	if kb, err := kibField("/proc/"+strconv.Itoa(t.proc.pid())+"/status", "VmHWM"); err == nil {
		t.peakKB = kb
	}
	l := res.Latency
	h.logf("%-22s %-10s round %d: %7.0f req/s  p50 %6.2f  p99 %7.2f  p999 %7.2f ms  errors %d  missed %d  CPU %.3f s/1k  other load %.2f cores",
		t.name, k, round, res.Throughput, l.P50, l.P99, l.P999, res.Errors, res.Missed, m.ServerCPUPer1k, m.OtherCores)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(h.cfg.settle):
	}
	return nil
}

// finish derives the per-request figures from the totals.
func (m *measurement) finish() {
	per1k := func(cpu float64) float64 {
		if m.Requests == 0 {
			return 0
		}
		return cpu / float64(m.Requests) * 1000
	}
	m.ServerCPUPer1k = per1k(m.ServerCPUSeconds)
	m.LoadgenCPUPer1k = per1k(m.loadgenCPU)
	if m.servicesCPU > 0 {
		v := per1k(m.servicesCPU)
		m.ServicesCPUPer1k = &v
	}
	if m.wall > 0 {
		m.OtherCores = m.otherCPU / m.wall
		m.IdleTargetsCores = m.idleCPU / m.wall
	}
}

// merge combines the rounds of one measurement.
func merge(runs []*measurement) *measurement {
	if len(runs) == 0 {
		return nil
	}
	if len(runs) == 1 {
		return runs[0]
	}
	results := make([]*load.Result, len(runs))
	m := &measurement{}
	for i, r := range runs {
		results[i] = r.Result
		m.ServerCPUSeconds += r.ServerCPUSeconds
		m.servicesCPU += r.servicesCPU
		m.loadgenCPU += r.loadgenCPU
		m.otherCPU += r.otherCPU
		m.idleCPU += r.idleCPU
		m.wall += r.wall
	}
	m.Result = load.Merge(results...)
	m.finish()
	return m
}

// copyBundle copies the policy bundle for OPA, leaving out the Rego tests (OPA's server
// would load them as policies).
func copyBundle(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		if strings.HasSuffix(d.Name(), "_test.rego") || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	})
}

func formatShares(s []load.Share) string {
	parts := make([]string, len(s))
	for i, x := range s {
		parts[i] = fmt.Sprintf("%s %.0f%%", x.Outcome, 100*x.Fraction)
	}
	return strings.Join(parts, ", ")
}

// goVersion is the toolchain that built the harness, and with it the servers.
func goVersion() string { return runtime.Version() }
