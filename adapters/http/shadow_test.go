package http_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	httpapi "github.com/verdict-engine/verdict/adapters/http"
	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/policies"
	"github.com/verdict-engine/verdict/store"
)

// shadowSource is a fixed httpapi.ShadowSource.
type shadowSource map[string][]*engine.Policy

func (s shadowSource) Shadow(action string) []*engine.Policy { return s[action] }

// shadowWriter is an httpapi.ShadowWriter calling write.
type shadowWriter struct {
	write func([]store.ShadowResult) error
}

func (w shadowWriter) WriteShadowResults(_ context.Context, rs []store.ShadowResult) error {
	return w.write(rs)
}

func TestShadowQueueAndFlush(t *testing.T) {
	base, err := engine.Load(policies.Bundle())
	if err != nil {
		t.Fatal(err)
	}
	version, err := engine.LoadVersion("", map[string][]byte{"payout.rego": []byte(`# METADATA
# custom:
#   fail_mode: review
package verdict.payout

decision := {"outcome": "block", "score": 100, "reasons": [{"code": "ALWAYS", "outcome": "block", "message": "m"}]} if {
	input.signals.velocity.user.count_1h < 1000 # reads velocity, which the input has unavailable
}
`)})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := version.Policy("payout")
	var mu sync.Mutex
	var got []store.ShadowResult
	w := shadowWriter{write: func(rs []store.ShadowResult) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, rs...)
		return nil
	}}
	reg := prometheus.NewRegistry()
	sh := httpapi.NewShadow(engine.New(base), shadowSource{"payout": {p}}, w, httpapi.WithShadowQueue(1), httpapi.WithShadowRate(0), httpapi.WithShadowRegisterer(reg))

	in := &engine.Input{Action: "payout", Subject: map[string]any{"id": "u"}, Context: map[string]any{"amount": 1.0},
		Signals: engine.Signals{Unavailable: []string{"velocity"}}}
	sh.Enqueue("d1", in, engine.Approve)
	sh.Enqueue("d2", in, engine.Approve) // the queue holds one: dropped
	sh.Enqueue("d3", &engine.Input{Action: "login"}, engine.Approve)
	var nilShadow *httpapi.Shadow
	nilShadow.Enqueue("d4", in, engine.Approve) // a server without shadow evaluation

	sh.Start()
	if err := sh.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].DecisionID != "d1" || got[0].Hash != p.Hash || got[0].Outcome != "block" ||
		!slices.Equal(got[0].ReasonCodes, []string{"ALWAYS", "SIGNALS_UNAVAILABLE"}) {
		t.Fatalf("results %+v", got)
	}
	mfs, _ := reg.Gather()
	var text strings.Builder
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			fmt.Fprintf(&text, "%s %v\n", mf.GetName(), m.GetCounter().GetValue())
		}
	}
	for _, want := range []string{"verdict_shadow_dropped_total 1", "verdict_shadow_evaluations_total 1", "verdict_shadow_disagreements_total 1"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, text.String())
		}
	}
}

// toggledSource serves its source's shadow versions while on.
type toggledSource struct {
	httpapi.ShadowSource
	on *atomic.Bool
}

func (s toggledSource) Shadow(action string) []*engine.Policy {
	if !s.on.Load() {
		return nil
	}
	return s.ShadowSource.Shadow(action)
}

// BenchmarkDecideShadow measures /v1/decide over TCP at a fixed rate (500/s, below
// saturation) with three shadow versions of payout, in blocks of 100 requests with
// shadow evaluation on and off in turn, so that both see the same machine. It reports
// the client-side p50 and p99 of each, and p99(on)/p99(off):
//
//	go test ./adapters/http -run '^$' -bench DecideShadow -benchtime 6000x
//
// store=false does not store the results: the evaluations' cost alone.
func BenchmarkDecideShadow(b *testing.B) {
	for _, bc := range []struct {
		discard bool
		rate    float64
		aa      bool // A/A: shadow stays off in both halves, to show the measurement's noise
	}{{false, httpapi.DefaultShadowRate, false}, {true, httpapi.DefaultShadowRate, false}, {false, 100, false}, {false, 0, false}, {true, 0, false}, {false, 0, true}} {
		discard := bc.discard
		name := fmt.Sprintf("store=%v/rate=%v", !discard, bc.rate)
		if bc.aa {
			name = "aa"
		}
		b.Run(name, func(b *testing.B) {
			on, shadowOn := &atomic.Bool{}, &atomic.Bool{}
			if bc.aa {
				shadowOn = &atomic.Bool{} // never set: both halves run without shadow
			} else {
				shadowOn = on
			}
			opts := policyEnvOptions{rate: bc.rate, source: func(s httpapi.ShadowSource) httpapi.ShadowSource { return toggledSource{s, shadowOn} }}
			if discard {
				opts.writer = shadowWriter{write: func([]store.ShadowResult) error { return nil }}
			}
			e := newPolicyEnv(b, opts)
			var hashes []string
			for i := range 3 {
				files := payoutVersion(b, "version: payout-2026.12.1", fmt.Sprintf("version: payout-shadow-%d", i))
				r := e.as(b, aliceKey, "POST", "/v1/policies", publishBody(b, fmt.Sprint("shadow-", i), files))
				var v struct{ Hash string }
				if err := json.Unmarshal(r.body, &v); err != nil || r.status != 201 {
					b.Fatalf("publish: %d %s", r.status, r.body)
				}
				hashes = append(hashes, v.Hash)
			}
			if r := e.as(b, aliceKey, "PUT", "/v1/policies/payout/shadow", `{"versions":["`+strings.Join(hashes, `","`)+`"]}`); r.status != 200 {
				b.Fatalf("shadow: %d %s", r.status, r.body)
			}
			e.sync(b)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go func() { _ = e.srv.App().Listener(ln) }()
			defer func() { _ = e.srv.App().Shutdown() }()
			url := "http://" + ln.Addr().String() + "/v1/decide"
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
			post := func(i int) time.Duration {
				req, _ := http.NewRequest("POST", url, strings.NewReader(fmt.Sprintf(payoutBody, i)))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+shopKey)
				start := time.Now()
				res, err := client.Do(req)
				if err != nil || res.StatusCode != 200 {
					b.Errorf("decide: %v %v", err, res)
					return 0
				}
				_, _ = io.Copy(io.Discard, res.Body)
				_ = res.Body.Close()
				return time.Since(start)
			}
			for i := range 200 { // warm up
				post(-i - 1)
			}
			// Blocks of 100 requests alternate off/on; windows of 2,000 (ten blocks of each)
			// give one p99 ratio each, and the median over windows is robust to the
			// machine's bursts, which a pooled p99 over a shared machine is not.
			const rate, block, window = 500, 100, 2000
			lat := [2][]time.Duration{make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)}
			windows := make([][2][]time.Duration, (b.N+window-1)/window)
			var mu sync.Mutex
			var wg sync.WaitGroup
			tick := time.NewTicker(time.Second / rate)
			defer tick.Stop()
			b.ResetTimer()
			for i := range b.N {
				if i%block == 0 {
					wg.Wait()
					on.Store((i/block)%2 == 1)
				}
				mode := 0
				if on.Load() {
					mode = 1
				}
				<-tick.C
				wg.Go(func() {
					d := post(i)
					mu.Lock()
					lat[mode] = append(lat[mode], d)
					windows[i/window][mode] = append(windows[i/window][mode], d)
					mu.Unlock()
				})
			}
			wg.Wait()
			b.StopTimer()
			var p99 [2]float64
			for mode, name := range []string{"off", "on"} {
				l := lat[mode]
				if len(l) == 0 {
					continue
				}
				slices.Sort(l)
				p99[mode] = float64(l[len(l)*99/100].Microseconds())
				b.ReportMetric(float64(l[len(l)/2].Microseconds()), "p50-"+name+"-µs")
				b.ReportMetric(p99[mode], "p99-"+name+"-µs")
			}
			if p99[0] > 0 {
				b.ReportMetric(p99[1]/p99[0], "p99-on/off")
			}
			var ratios []float64
			for _, w := range windows {
				if len(w[0]) < window/4 || len(w[1]) < window/4 {
					continue // a last window too short for a p99
				}
				var q [2]float64
				for mode := range w {
					slices.Sort(w[mode])
					q[mode] = float64(w[mode][len(w[mode])*99/100])
				}
				ratios = append(ratios, q[1]/q[0])
			}
			if len(ratios) > 0 {
				slices.Sort(ratios)
				b.ReportMetric(ratios[len(ratios)/2], "p99-on/off-median")
				b.ReportMetric(float64(len(ratios)), "windows")
			}
		})
	}
}
