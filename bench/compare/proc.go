//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is a server started by the harness, in its own process group so that it and
// anything it starts can be signalled together.
type process struct {
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	waitErr error // set before exited is closed
}

// startProcess starts bin with args and env (added to the harness's environment minus
// VERDICT_* variables), writing its stdout and stderr to logPath.
func startProcess(bin string, args, env []string, dir, logPath string) (*process, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create log: %w", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(os.Environ()), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Pdeathsig kills the server if the harness dies without cleaning up (kill -9).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &process{cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	return p, nil
}

// cleanEnv drops VERDICT_* variables so that the caller's settings cannot change what a
// target runs against.
func cleanEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, "VERDICT_") {
			out = append(out, kv)
		}
	}
	return out
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// exitError describes how the process ended, with the end of its log.
func (p *process) exitError() error {
	return fmt.Errorf("exited (%v); log tail:\n%s", p.waitErr, p.logTail(15))
}

// stop asks the process group to terminate and kills it after 5 s.
func (p *process) stop() {
	if !p.alive() {
		return
	}
	pgid := p.pid()
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.exited
	}
}

func (p *process) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

// waitReady polls base+path for each path until every one answers 200, the process
// exits, ctx is done or timeout passes.
func waitReady(ctx context.Context, p *process, base string, paths []string, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for _, path := range paths {
		for {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
			if err != nil {
				return err
			}
			resp, err := client.Do(req)
			status := 0
			if err == nil {
				status = resp.StatusCode
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			if status == http.StatusOK {
				break
			}
			if !p.alive() {
				return p.exitError()
			}
			if time.Now().After(deadline) {
				if err == nil {
					err = fmt.Errorf("status %d", status)
				}
				return fmt.Errorf("GET %s not ready after %s: %v; log tail:\n%s", path, timeout, err, p.logTail(15))
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// freePort returns a port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// clockTicks is USER_HZ, the unit of CPU times in /proc: 100 on every Linux ABI.
const clockTicks = 100

// procCPUTicks returns a process's user+system CPU time in clock ticks.
func procCPUTicks(pid string) (int64, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("malformed stat")
	}
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("malformed stat: %w", err)
	}
	return u + s, nil
}

// systemBusyTicks returns the CPU time all processes spent busy, from /proc/stat.
func systemBusyTicks() (int64, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, errors.New("empty /proc/stat")
	}
	f2 := strings.Fields(sc.Text()) // cpu user nice system idle iowait irq softirq steal ...
	if len(f2) < 9 || f2[0] != "cpu" {
		return 0, errors.New("malformed /proc/stat")
	}
	var busy int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, err := strconv.ParseInt(f2[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("malformed /proc/stat: %w", err)
		}
		busy += v
	}
	return busy, nil
}

// serviceTicks returns the CPU ticks of every Postgres and Redis server process by pid.
// It counts them whoever uses them.
func serviceTicks() map[string]int64 {
	out := map[string]int64{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range entries {
		pid := e.Name()
		if pid[0] < '0' || pid[0] > '9' {
			continue
		}
		comm, err := os.ReadFile("/proc/" + pid + "/comm")
		if err != nil {
			continue
		}
		switch strings.TrimSpace(string(comm)) {
		case "postgres", "redis-server":
			if t, err := procCPUTicks(pid); err == nil {
				out[pid] = t
			}
		}
	}
	return out
}

// machine describes the host for the report.
type machine struct {
	NProc       int     `json:"nproc"`
	CPUModel    string  `json:"cpu_model"`
	MemTotalGiB float64 `json:"mem_total_gib"`
	Kernel      string  `json:"kernel"`
	LoadAvg     string  `json:"loadavg_at_start"`
}

func describeMachine(nproc int) machine {
	m := machine{NProc: nproc, CPUModel: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if kib, err := kibField("/proc/meminfo", "MemTotal"); err == nil {
		m.MemTotalGiB = float64(kib) / (1 << 20)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.LoadAvg = loadAvg()
	return m
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// kibField returns a "Name:  N kB" field of a /proc file, e.g. VmHWM (peak RSS) of
// /proc/<pid>/status or MemTotal of /proc/meminfo.
func kibField(path, field string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in %s", field, path)
}
