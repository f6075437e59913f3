//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/verdict-engine/verdict/bench/load"
)

// report is results.json; results.md renders it.
type report struct {
	Date       string  `json:"date"`
	Command    string  `json:"command"`
	Mode       string  `json:"mode"`
	RunSeconds float64 `json:"run_seconds"`
	// BuildSeconds is the part of RunSeconds spent compiling Verdict and OPA.
	BuildSeconds float64           `json:"build_seconds"`
	Settings     settings          `json:"settings"`
	Machine      machine           `json:"machine"`
	LoadAvgEnd   string            `json:"loadavg_at_end"`
	GoVersion    string            `json:"go_version"`
	Versions     map[string]string `json:"versions"`
	Targets      []*targetReport   `json:"targets"`
	Ratios       []ratio           `json:"ratios"`
	Notes        []string          `json:"notes,omitempty"`

	rates []int
}

type settings struct {
	MeasureSeconds  float64  `json:"measure_seconds"`
	WarmupSeconds   float64  `json:"warmup_seconds"`
	Rounds          int      `json:"rounds"`
	SaturationConns []int    `json:"saturation_conns"`
	OpenLoopWorkers int      `json:"open_loop_workers"`
	Interleaved     bool     `json:"interleaved"`
	Mix             load.Mix `json:"mix"`
	Bodies          int      `json:"distinct_bodies"`
}

type targetReport struct {
	Name     string       `json:"name"`
	Command  string       `json:"command"`
	Status   string       `json:"status"` // ok or failed
	Error    string       `json:"error,omitempty"`
	Outcomes []load.Share `json:"probe_outcomes,omitempty"`
	// Saturation is the saturation measurement with the highest throughput: the
	// target's capacity. SaturationByConns holds every connection count measured.
	Saturation        *summary   `json:"saturation,omitempty"`
	SaturationByConns []*summary `json:"saturation_by_conns,omitempty"`
	Rates             []*summary `json:"rates,omitempty"`
	PeakRSSMiB        float64    `json:"peak_rss_mib,omitempty"`
}

// summary is a measurement merged over its rounds, with the rounds when there are
// several.
type summary struct {
	*measurement
	Rounds []*measurement `json:"rounds,omitempty"`
}

func (tr *targetReport) rate(r int) *summary {
	for _, s := range tr.Rates {
		if s.Rate == r {
			return s
		}
	}
	return nil
}

type ratio struct {
	Metric string  `json:"metric"`
	Of     string  `json:"of"`
	Over   string  `json:"over"`
	Value  float64 `json:"value"`
}

func (h *harness) report(b *binaries) *report {
	mode := "full"
	if h.cfg.short {
		mode = "short"
	}
	r := &report{
		Date:    h.started.UTC().Format("2006-01-02 15:04 UTC"), // when the run began
		Command: h.cfg.command,
		Mode:    mode,
		Settings: settings{
			MeasureSeconds: h.cfg.measure.Seconds(), WarmupSeconds: h.cfg.warmup.Seconds(), Rounds: h.cfg.rounds,
			SaturationConns: h.cfg.conns, OpenLoopWorkers: 128, Interleaved: !h.cfg.sequential,
			Mix: load.DefaultMix(), Bodies: h.cfg.bodies,
		},
		Machine:    describeMachine(runtime.NumCPU()),
		LoadAvgEnd: loadAvg(),
		GoVersion:  goVersion(),
		Versions:   map[string]string{"opa": b.opaVersion, "verdict": b.verdictVersion, "git": gitRevision(h.root)},
	}
	r.Machine.LoadAvg = h.loadAvgStart
	seen := map[int]bool{}
	for _, t := range h.targets {
		tr := &targetReport{Name: t.name, Command: t.display, Status: "ok", Outcomes: load.Shares(t.probe)}
		if t.err != nil {
			tr.Status, tr.Error = "failed", t.err.Error()
		}
		for _, c := range h.cfg.conns {
			if runs := t.runs[kind{conns: c}.key()]; len(runs) > 0 {
				s := summarize(runs)
				tr.SaturationByConns = append(tr.SaturationByConns, s)
				if tr.Saturation == nil || s.Throughput > tr.Saturation.Throughput {
					tr.Saturation = s
				}
			}
		}
		for _, rate := range t.rates {
			if !seen[rate] {
				seen[rate] = true
				r.rates = append(r.rates, rate)
			}
			if runs := t.runs[kind{rate: rate}.key()]; len(runs) > 0 {
				tr.Rates = append(tr.Rates, summarize(runs))
			}
		}
		tr.PeakRSSMiB = float64(t.peakKB) / 1024
		r.Targets = append(r.Targets, tr)
	}
	r.Ratios = ratios(r.Targets)
	r.Notes = r.observations()
	r.RunSeconds = math.Round(time.Since(h.started).Seconds())
	r.BuildSeconds = math.Round(h.building.Seconds())
	return r
}

func summarize(runs []*measurement) *summary {
	s := &summary{measurement: merge(runs)}
	if len(runs) > 1 {
		s.Rounds = runs
	}
	return s
}

// ratios compares every Verdict target with OPA, measured in the same run.
func ratios(targets []*targetReport) []ratio {
	var opa *targetReport
	for _, t := range targets {
		if t.Name == "opa" {
			opa = t
		}
	}
	if opa == nil || opa.Saturation == nil {
		return nil
	}
	var out []ratio
	add := func(metric, of string, num, den float64) {
		if num > 0 && den > 0 {
			out = append(out, ratio{Metric: metric, Of: of, Over: "opa", Value: num / den})
		}
	}
	for _, t := range targets {
		if t == opa || t.Saturation == nil || !strings.HasPrefix(t.Name, "verdict-") {
			continue
		}
		add("saturation throughput", t.Name, t.Saturation.Throughput, opa.Saturation.Throughput)
		if a, b := t.rate(1000), opa.rate(1000); a != nil && b != nil {
			add("p99 at 1000/s", t.Name, a.Latency.P99, b.Latency.P99)
		}
		add("server CPU per request at saturation", t.Name, t.Saturation.ServerCPUPer1k, opa.Saturation.ServerCPUPer1k)
		add("peak RSS", t.Name, t.PeakRSSMiB, opa.PeakRSSMiB)
	}
	return out
}

// observations lists what a reader must know to trust the figures.
func (r *report) observations() []string {
	var out []string
	var opa *targetReport
	var other, otherN float64
	maxLag := 0.0
	var minSamples int64
	for _, t := range r.Targets {
		if t.Name == "opa" {
			opa = t
		}
		all := append(slices.Clone(t.SaturationByConns), t.Rates...)
		for _, s := range all {
			label := fmt.Sprintf("%s at %s", t.Name, kind{rate: s.Rate, conns: s.Conns})
			if s.Errors > 0 {
				out = append(out, fmt.Sprintf("%s: %d errors of %d requests (%s); e.g. %s", label, s.Errors, s.Requests, statusSummary(s.Status), strings.Join(s.ErrorSamples, " | ")))
			}
			if s.Missed > 0 {
				out = append(out, fmt.Sprintf("%s: %d requests never sent: the server fell more than 2 s behind (overloaded)", label, s.Missed))
			}
			if s.Rate > 0 && s.Throughput < 0.97*float64(s.Rate) {
				out = append(out, fmt.Sprintf("%s: only %.0f req/s answered with 200: the target did not sustain the rate", label, s.Throughput))
			}
			if s.DispatchLag != nil {
				maxLag = max(maxLag, s.DispatchLag.P99)
			}
			if s.Workers > 0 && s.MaxInFlight >= int64(s.Workers) {
				out = append(out, fmt.Sprintf("%s: all %d connections were busy at times: the server fell behind and requests queued in the generator (counted in latency)", label, s.Workers))
			}
			if s.OtherCores > 0.5 {
				out = append(out, fmt.Sprintf("%s ran while other processes on the machine used %.2f cores", label, s.OtherCores))
			}
			other += s.OtherCores
			otherN++
			if s.Rate > 0 && (minSamples == 0 || s.Latency.Count < minSamples) {
				minSamples = s.Latency.Count
			}
		}
		if t.Saturation != nil && t.Saturation.ServicesCPUPer1k != nil {
			out = append(out, fmt.Sprintf("%s: Postgres and Redis used a further %.3f CPU s per 1k requests at saturation (not in the table's server CPU; includes anyone else using those servers)", t.Name, *t.Saturation.ServicesCPUPer1k))
		}
	}
	genCores := 0.0
	for _, t := range r.Targets {
		if s := t.Saturation; s != nil && s.Seconds > 0 {
			genCores = max(genCores, s.LoadgenCPUPer1k*float64(s.Requests)/1000/s.Seconds)
		}
	}
	if genCores > 0 {
		out = append(out, fmt.Sprintf("the load generator shares the machine: it used at most %.2f cores during the saturation runs", genCores))
	}
	if otherN > 0 && other/otherN > 0.2 {
		out = append(out, fmt.Sprintf("the machine was busy: other processes used %.2f cores on average during the measurements (load average %s at start, %s at end); absolute figures are low, ratios within the run are more robust", other/otherN, r.Machine.LoadAvg, r.LoadAvgEnd))
	}
	if maxLag > 1 {
		out = append(out, fmt.Sprintf("the generator's pacer released some open-loop requests late (worst p99 %.2f ms, CPU contention on the shared machine); the lateness counts in the latency figures", maxLag))
	}
	for _, t := range r.Targets {
		if t.Name == floorTarget {
			out = append(out, fmt.Sprintf("%s decides nothing: it answers the same fixed decision after one fdatasync of 4 KB, so its latency is this host's floor under a durable answer (HTTP, scheduling, one sync), and a Verdict target's latency above it is what Verdict's own path adds", floorTarget))
		}
	}
	if opa != nil && len(opa.Outcomes) > 0 {
		for _, t := range r.Targets {
			if t != opa && len(t.Outcomes) > 0 && t.Name != floorTarget {
				if d := shareDistance(opa.Outcomes, t.Outcomes); d > 0.1 {
					out = append(out, fmt.Sprintf("%s and opa reached different outcomes on the same requests (%s vs %s): the OPA input's signals do not match what Verdict gathered", t.Name, formatShares(t.Outcomes), formatShares(opa.Outcomes)))
				}
			}
		}
	}
	if minSamples > 0 && minSamples < 10000 {
		out = append(out, fmt.Sprintf("p999 at the lowest rate rests on the %d slowest of %d requests: use the full run for published figures", max(1, minSamples/1000), minSamples))
	}
	return out
}

func shareDistance(a, b []load.Share) float64 {
	m := map[string]float64{}
	for _, s := range a {
		m[s.Outcome] += s.Fraction
	}
	for _, s := range b {
		m[s.Outcome] -= s.Fraction
	}
	d := 0.0
	for _, v := range m {
		d = max(d, math.Abs(v))
	}
	return d
}

func statusSummary(st map[string]int64) string {
	if len(st) == 0 {
		return "transport errors"
	}
	var parts []string
	for k, v := range st {
		parts = append(parts, fmt.Sprintf("%d × %s", v, k))
	}
	return strings.Join(parts, ", ")
}

func gitRevision(root string) string {
	rev, err := exec.Command("git", "-C", root, "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	v := strings.TrimSpace(string(rev))
	// The results of an earlier run do not make the tree under test dirty.
	if st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)bench/results").Output(); err == nil && len(st) > 0 {
		v += "-dirty"
	}
	return v
}

// write saves results.json and results.md in dir and returns the Markdown.
func (r *report) write(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(js, '\n'), 0o644); err != nil {
		return "", err
	}
	md := r.markdown()
	if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte(md), 0o644); err != nil {
		return "", err
	}
	return md, nil
}

func (r *report) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# Verdict and OPA: decision throughput and latency\n\n")
	p("- Date: %s (start; the run took %s, of which %s compiling Verdict and OPA)\n", r.Date, time.Duration(r.RunSeconds)*time.Second, time.Duration(r.BuildSeconds)*time.Second)
	p("- Machine: %d × %s (nproc %d), %.1f GiB RAM, Linux %s; load average %s at start, %s at end\n",
		r.Machine.NProc, r.Machine.CPUModel, r.Machine.NProc, r.Machine.MemTotalGiB, r.Machine.Kernel, r.Machine.LoadAvg, r.LoadAvgEnd)
	p("- Go %s; OPA %s; %s (git %s)\n", r.GoVersion, r.Versions["opa"], r.Versions["verdict"], r.Versions["git"])
	p("- Command: `%s` (%s mode: %.0f s measured after %.0f s warm-up per measurement, %d round(s), measurements %s)\n\n",
		r.Command, r.Mode, r.Settings.MeasureSeconds, r.Settings.WarmupSeconds, r.Settings.Rounds, map[bool]string{true: "interleaved across targets", false: "one target after another"}[r.Settings.Interleaved])

	p("| target | saturation req/s (peak; conns) |")
	for _, rate := range r.rates {
		p(" p50 / p99 / p999 ms at %d/s |", rate)
	}
	p(" CPU s / 1k req (saturation) | CPU s / 1k req (1000/s) | peak RSS MiB |\n|---|---:|")
	for range r.rates {
		p("---:|")
	}
	p("---:|---:|---:|\n")
	for _, t := range r.Targets {
		if t.Saturation == nil && t.Status == "failed" {
			p("| %s | **failed**: %s |", t.Name, oneLine(t.Error))
			for range r.rates {
				p(" — |")
			}
			p(" — | — | — |\n")
			continue
		}
		p("| %s | %s |", t.Name, peakCell(t.Saturation))
		for _, rate := range r.rates {
			p(" %s |", latCell(t.rate(rate)))
		}
		cpuAt1k := "—"
		if s := t.rate(1000); s != nil {
			cpuAt1k = fmt.Sprintf("%.3f", s.ServerCPUPer1k)
		}
		cpuSat := "—"
		if t.Saturation != nil {
			cpuSat = fmt.Sprintf("%.3f", t.Saturation.ServerCPUPer1k)
		}
		p(" %s | %s | %s |\n", cpuSat, cpuAt1k, mib(t.PeakRSSMiB))
	}
	p("\n")
	if len(r.Ratios) > 0 {
		p("Ratios within this run (Verdict target / opa):\n\n| metric |")
		var names []string
		for _, x := range r.Ratios {
			if !slices.Contains(names, x.Of) {
				names = append(names, x.Of)
			}
		}
		for _, n := range names {
			p(" %s / opa |", n)
		}
		p("\n|---|")
		for range names {
			p("---:|")
		}
		p("\n")
		var metrics []string
		for _, x := range r.Ratios {
			if !slices.Contains(metrics, x.Metric) {
				metrics = append(metrics, x.Metric)
			}
		}
		for _, m := range metrics {
			p("| %s |", m)
			for _, n := range names {
				cell := "—"
				for _, x := range r.Ratios {
					if x.Metric == m && x.Of == n {
						cell = fmt.Sprintf("%.2f×", x.Value)
					}
				}
				p(" %s |", cell)
			}
			p("\n")
		}
		p("\n")
	}
	if len(r.Settings.SaturationConns) > 1 {
		p("Saturation by closed-loop connections (req/s; p99 ms):\n\n| target |")
		for _, c := range r.Settings.SaturationConns {
			p(" %d conns |", c)
		}
		p("\n|---|")
		for range r.Settings.SaturationConns {
			p("---:|")
		}
		p("\n")
		for _, t := range r.Targets {
			p("| %s |", t.Name)
			for _, c := range r.Settings.SaturationConns {
				cell := "—"
				for _, s := range t.SaturationByConns {
					if s.Conns == c {
						cell = fmt.Sprintf("%s; %s", satCell(s), msCell(s.Latency.P99))
					}
				}
				p(" %s |", cell)
			}
			p("\n")
		}
		p("\n")
	}
	p("Outcomes of the first requests (the same requests for every target): ")
	var outs []string
	for _, t := range r.Targets {
		if len(t.Outcomes) > 0 {
			outs = append(outs, fmt.Sprintf("%s: %s", t.Name, formatShares(t.Outcomes)))
		}
	}
	p("%s.\n\n", strings.Join(outs, "; "))
	if len(r.Notes) > 0 {
		p("Notes:\n\n")
		for _, n := range r.Notes {
			p("- %s\n", oneLine(n))
		}
		p("\n")
	}
	for _, t := range r.Targets {
		if t.Status == "failed" && strings.Contains(t.Error, "\n") {
			p("%s failed:\n\n```\n%s\n```\n\n", t.Name, t.Error)
		}
	}
	p("How: ")
	p("every target gets the same requests (payouts by %d users with their own devices and IPs, %.0f%% risky) in the same order; "+
		"opa receives each request with the signals Verdict would gather for it and only evaluates the policy, "+
		"the same policy bundle Verdict embeds (a fresh store holds no identity verifications, so payouts end in step_up or block), "+
		"while Verdict gathers signals, decides and durably records the decision before answering. ",
		r.Settings.Mix.Users, 100*r.Settings.Mix.Risky)
	p("Saturation: closed-loop keep-alive connections, %s of them in turn; the table shows the highest throughput and its connection count "+
		"(a server that answers only after a durable group commit needs more requests in flight to keep the CPU busy than one that only evaluates). Fixed rates: open loop, latency measured from each request's scheduled time "+
		"(no coordinated omission), up to %d in flight. The load generator (fasthttp client, pre-built bodies) runs on the same machine. "+
		"CPU: utime+stime of the server process from /proc over the measured window; peak RSS: VmHWM. Any non-200 answer is an error.\n",
		joinInts(r.Settings.SaturationConns, ", "), r.Settings.OpenLoopWorkers)
	for _, t := range r.Targets {
		p("\n- `%s`: `%s`", t.Name, t.Command)
	}
	p("\n")
	return b.String()
}

func satCell(s *summary) string {
	if s == nil {
		return "—"
	}
	return fmt.Sprintf("%s%s", thousands(s.Throughput), errSuffix(s))
}

// peakCell is the main table's saturation cell: the peak throughput and its connections.
func peakCell(s *summary) string {
	if s == nil {
		return "—"
	}
	return fmt.Sprintf("%s (%d)", satCell(s), s.Conns)
}

func joinInts(xs []int, sep string) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.Itoa(x)
	}
	return strings.Join(parts, sep)
}

func latCell(s *summary) string {
	if s == nil {
		return "—"
	}
	l := s.Latency
	return fmt.Sprintf("%s / %s / %s%s", msCell(l.P50), msCell(l.P99), msCell(l.P999), errSuffix(s))
}

func errSuffix(s *summary) string {
	var parts []string
	if s.Errors > 0 {
		parts = append(parts, fmt.Sprintf("%d errors", s.Errors))
	}
	if s.Missed > 0 {
		parts = append(parts, fmt.Sprintf("%d missed", s.Missed))
	}
	if s.Rate > 0 && s.Throughput < 0.97*float64(s.Rate) {
		parts = append(parts, fmt.Sprintf("only %.0f/s", s.Throughput))
	}
	if len(parts) == 0 {
		return ""
	}
	return " ⚠ " + strings.Join(parts, ", ")
}

func msCell(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func mib(v float64) string {
	if v == 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f", v)
}

func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func oneLine(s string) string {
	line, rest, _ := strings.Cut(s, "\n")
	if rest != "" {
		line += " (details below)"
	}
	return strings.ReplaceAll(line, "|", "\\|")
}
