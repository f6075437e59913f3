// Package velocitytest is the conformance suite every signals.Velocity implementation
// passes, so that the in-process default and Redis count exactly alike.
package velocitytest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/signals"
)

// epoch returns an arbitrary fixed event time: counts follow event times, never a clock.
func epoch() time.Time { return time.Date(2025, time.March, 1, 12, 0, 0, 0, time.UTC) }

// Run runs the conformance suite against the implementation newVelocity returns. Every
// subtest calls newVelocity once and may run in parallel with the others, so each call
// must return a Velocity isolated from the others' data (a fresh Memory, a Redis key
// prefix of its own) and register its own cleanup with t.Cleanup.
func Run(t *testing.T, newVelocity func(t *testing.T) signals.Velocity) {
	tests := []struct {
		name string
		fn   func(t *testing.T, v signals.Velocity)
	}{
		{"WindowBounds", testWindowBounds},
		{"LateEvent", testLateEvent},
		{"PerAction", testPerAction},
		{"Distinct", testDistinct},
		{"DeviceFirstSeen", testDeviceFirstSeen},
		{"Idempotent", testIdempotent},
		{"EmptyIDs", testEmptyIDs},
		{"InvalidEvent", testInvalidEvent},
		{"CanceledContext", testCanceledContext},
		{"Concurrent", testConcurrent},
		{"Model", testModel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newVelocity(t))
		})
	}
}

// observe calls v.Observe with a deadline and fails the test on error.
func observe(t *testing.T, v signals.Velocity, ev signals.Event) signals.Observation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	obs, err := v.Observe(ctx, ev)
	if err != nil {
		t.Fatalf("Observe(%+v): %v", ev, err)
	}
	return obs
}

func counts(w engine.Window) [3]int64 { return [3]int64{w.Count1m, w.Count1h, w.Count24h} }

func checkWindow(t *testing.T, what string, got, want engine.Window) {
	t.Helper()
	if got != want {
		t.Errorf("%s window = %+v, want %+v", what, got, want)
	}
}

func checkObservation(t *testing.T, got, want signals.Observation) {
	t.Helper()
	checkWindow(t, "user", got.User, want.User)
	checkWindow(t, "device", got.Device, want.Device)
	checkWindow(t, "ip", got.IP, want.IP)
	if got.DeviceKnown != want.DeviceKnown {
		t.Errorf("DeviceKnown = %v, want %v", got.DeviceKnown, want.DeviceKnown)
	}
	if !got.DeviceFirstSeen.Equal(want.DeviceFirstSeen) {
		t.Errorf("DeviceFirstSeen = %v, want %v", got.DeviceFirstSeen, want.DeviceFirstSeen)
	}
	if got.DeviceUsers30d != want.DeviceUsers30d {
		t.Errorf("DeviceUsers30d = %d, want %d", got.DeviceUsers30d, want.DeviceUsers30d)
	}
}

// testWindowBounds checks that a window of length w at At covers (At-w, At]: an event
// exactly w earlier is out, one a millisecond later is in.
func testWindowBounds(t *testing.T, v signals.Velocity) {
	t0 := epoch()
	steps := []struct {
		name string
		at   time.Duration // after t0
		want [3]int64      // 1 m, 1 h, 24 h
	}{
		{"first", 0, [3]int64{1, 1, 1}},
		{"59s: same minute", 59 * time.Second, [3]int64{2, 2, 2}},
		{"61s: first leaves 1m", 61 * time.Second, [3]int64{2, 3, 3}},
		{"1h1s: first leaves 1h", time.Hour + time.Second, [3]int64{1, 3, 4}},
		{"24h: first exactly 24h earlier is out", 24 * time.Hour, [3]int64{1, 1, 4}},
		{"24h59s: 59s event exactly 24h earlier is out", 24*time.Hour + 59*time.Second, [3]int64{2, 2, 4}},
		{"24h1m59s: event exactly 1m earlier is out", 24*time.Hour + 119*time.Second, [3]int64{1, 3, 4}},
		{"24h2m58.999s: event 59.999s earlier is in", 24*time.Hour + 119*time.Second + 59999*time.Millisecond, [3]int64{2, 4, 5}},
	}
	for i, st := range steps {
		ev := signals.Event{ID: "wb-" + strconv.Itoa(i), Action: "login", UserID: "u1", DeviceID: "d1", IP: "192.0.2.1", At: t0.Add(st.at)}
		obs := observe(t, v, ev)
		for _, w := range []struct {
			what string
			got  engine.Window
		}{{"user", obs.User}, {"device", obs.Device}, {"ip", obs.IP}} {
			if got := counts(w.got); got != st.want {
				t.Errorf("%s: %s counts (1m, 1h, 24h) = %v, want %v", st.name, w.what, got, st.want)
			}
		}
	}
}

// testLateEvent checks that an event older than ones already recorded (a late arrival,
// or a concurrent request whose clock read came first but was recorded second) counts
// every recorded event in its windows, including those stamped after it: windows are
// open at the top, so n concurrent requests always see the counts 1..n.
func testLateEvent(t *testing.T, v signals.Velocity) {
	t0 := epoch()
	steps := []struct {
		at   time.Duration
		want [3]int64
	}{
		{10 * time.Minute, [3]int64{1, 1, 1}},
		{20 * time.Minute, [3]int64{1, 2, 2}},
		{15 * time.Minute, [3]int64{2, 3, 3}}, // the 20 min event, recorded first, counts
		{15*time.Minute + 30*time.Second, [3]int64{3, 4, 4}},
		{21 * time.Minute, [3]int64{1, 5, 5}}, // the 20 min event is exactly 1 m earlier
	}
	for i, st := range steps {
		obs := observe(t, v, signals.Event{ID: "late-" + strconv.Itoa(i), Action: "login", UserID: "u1", At: t0.Add(st.at)})
		if got := counts(obs.User); got != st.want {
			t.Errorf("event at %v: user counts = %v, want %v", st.at, got, st.want)
		}
	}
}

// testPerAction checks that counts are per action while distinct devices are not.
func testPerAction(t *testing.T, v signals.Velocity) {
	t0 := epoch()
	steps := []struct {
		action, deviceID string
		user, dev, ip    engine.Window
	}{
		{"login", "dA", engine.Window{Count1m: 1, Count1h: 1, Count24h: 1, DistinctDevices24h: 1},
			engine.Window{Count1m: 1, Count1h: 1, Count24h: 1, DistinctUsers24h: 1},
			engine.Window{Count1m: 1, Count1h: 1, Count24h: 1, DistinctUsers24h: 1}},
		{"login", "dA", engine.Window{Count1m: 2, Count1h: 2, Count24h: 2, DistinctDevices24h: 1},
			engine.Window{Count1m: 2, Count1h: 2, Count24h: 2, DistinctUsers24h: 1},
			engine.Window{Count1m: 2, Count1h: 2, Count24h: 2, DistinctUsers24h: 1}},
		{"payout", "dB", engine.Window{Count1m: 1, Count1h: 1, Count24h: 1, DistinctDevices24h: 2},
			engine.Window{Count1m: 1, Count1h: 1, Count24h: 1, DistinctUsers24h: 1},
			engine.Window{Count1m: 1, Count1h: 1, Count24h: 1, DistinctUsers24h: 1}},
		{"login", "dB", engine.Window{Count1m: 3, Count1h: 3, Count24h: 3, DistinctDevices24h: 2},
			engine.Window{Count1m: 1, Count1h: 1, Count24h: 1, DistinctUsers24h: 1},
			engine.Window{Count1m: 3, Count1h: 3, Count24h: 3, DistinctUsers24h: 1}},
	}
	for i, st := range steps {
		obs := observe(t, v, signals.Event{ID: "pa-" + strconv.Itoa(i), Action: st.action, UserID: "u1", DeviceID: st.deviceID, IP: "2001:db8::1", At: t0.Add(time.Duration(i) * time.Second)})
		t.Logf("step %d: %s on %s", i, st.action, st.deviceID)
		checkWindow(t, "user", obs.User, st.user)
		checkWindow(t, "device", obs.Device, st.dev)
		checkWindow(t, "ip", obs.IP, st.ip)
	}
}

// testDistinct checks distinct users per device and IP (24 h and, for devices, 30 d) and
// distinct devices per user, across actions, with their window bounds.
func testDistinct(t *testing.T, v signals.Velocity) {
	t0 := epoch()
	// One device and IP shared by several users.
	shared := []struct {
		at               time.Duration
		user, action     string
		users24, users30 int64
	}{
		{0, "u1", "login", 1, 1},
		{time.Minute, "u2", "payout", 2, 2},
		{2 * time.Minute, "u1", "signup", 2, 2},
		// u2 (last seen at 1 m) is exactly 24 h old and out; u1 (2 m) is in.
		{24*time.Hour + time.Minute, "u3", "login", 2, 3},
		// 30 d window from 31 d: only u3 (at 24 h 1 m) and u4 are left.
		{31 * 24 * time.Hour, "u4", "login", 1, 2},
	}
	for i, st := range shared {
		obs := observe(t, v, signals.Event{ID: "ds-" + strconv.Itoa(i), Action: st.action, UserID: st.user, DeviceID: "shared-device", IP: "198.51.100.7", At: t0.Add(st.at)})
		if obs.Device.DistinctUsers24h != st.users24 || obs.IP.DistinctUsers24h != st.users24 || obs.DeviceUsers30d != st.users30 {
			t.Errorf("event %d (%s at %v): device users 24h = %d, ip users 24h = %d, device users 30d = %d; want %d, %d, %d",
				i, st.user, st.at, obs.Device.DistinctUsers24h, obs.IP.DistinctUsers24h, obs.DeviceUsers30d, st.users24, st.users24, st.users30)
		}
		if obs.Device.DistinctDevices24h != 0 || obs.IP.DistinctDevices24h != 0 || obs.User.DistinctUsers24h != 0 {
			t.Errorf("event %d: distinct counts leaked into the wrong windows: %+v", i, obs)
		}
		if !obs.DeviceKnown && i > 0 {
			t.Errorf("event %d: DeviceKnown = false for a device seen before", i)
		}
	}

	// One user on several devices.
	devices := []struct {
		at      time.Duration
		device  string
		action  string
		devices int64
	}{
		{0, "d1", "login", 1},
		{time.Minute, "d2", "payout", 2},
		{2 * time.Minute, "d1", "login", 2},
		{3 * time.Minute, "", "login", 2}, // no device: nothing added, still counted
		{24*time.Hour + time.Minute, "d3", "login", 2},
	}
	for i, st := range devices {
		obs := observe(t, v, signals.Event{ID: "dd-" + strconv.Itoa(i), Action: st.action, UserID: "roaming-user", DeviceID: st.device, At: t0.Add(st.at)})
		if obs.User.DistinctDevices24h != st.devices {
			t.Errorf("event %d (%q at %v): user distinct devices 24h = %d, want %d", i, st.device, st.at, obs.User.DistinctDevices24h, st.devices)
		}
	}
}

// testDeviceFirstSeen checks DeviceKnown, DeviceFirstSeen and DeviceUsers30d.
func testDeviceFirstSeen(t *testing.T, v signals.Velocity) {
	t0 := epoch()
	first := signals.Event{ID: "fs-1", Action: "login", UserID: "u1", DeviceID: "d1", At: t0}
	steps := []struct {
		name  string
		ev    signals.Event
		known bool
		seen  time.Time
		users int64
	}{
		{"new device", first, false, t0, 1},
		{"seen again by another user", signals.Event{ID: "fs-2", Action: "payout", UserID: "u2", DeviceID: "d1", At: t0.Add(time.Hour)}, true, t0, 2},
		{"first event replayed", first, false, t0, 2},
		{"another new device, sub-ms time", signals.Event{ID: "fs-3", Action: "login", UserID: "u1", DeviceID: "d2", At: t0.Add(2*time.Hour + 1500*time.Microsecond)}, false, t0.Add(2*time.Hour + time.Millisecond), 1},
		{"no device", signals.Event{ID: "fs-4", Action: "login", UserID: "u1", At: t0.Add(3 * time.Hour)}, false, time.Time{}, 0},
		{"known device 20 days later", signals.Event{ID: "fs-5", Action: "login", UserID: "u3", DeviceID: "d1", At: t0.Add(20 * 24 * time.Hour)}, true, t0, 3},
	}
	for _, st := range steps {
		obs := observe(t, v, st.ev)
		if obs.DeviceKnown != st.known || !obs.DeviceFirstSeen.Equal(st.seen) || obs.DeviceUsers30d != st.users {
			t.Errorf("%s: known, first seen, users 30d = %v, %v, %d; want %v, %v, %d",
				st.name, obs.DeviceKnown, obs.DeviceFirstSeen, obs.DeviceUsers30d, st.known, st.seen, st.users)
		}
	}
}

// testIdempotent checks that an event observed again (by ID, whatever its time) is not
// counted again and that the repeat returns the counts as they stand at its time.
func testIdempotent(t *testing.T, v signals.Velocity) {
	t0 := epoch()
	e1 := signals.Event{ID: "id-1", Action: "login", UserID: "u1", DeviceID: "d1", IP: "203.0.113.9", At: t0}
	e2 := signals.Event{ID: "id-2", Action: "login", UserID: "u2", DeviceID: "d1", IP: "203.0.113.9", At: t0}
	e3 := signals.Event{ID: "id-3", Action: "login", UserID: "u1", DeviceID: "d2", IP: "203.0.113.9", At: t0.Add(30 * time.Second)}
	steps := []struct {
		name string
		ev   signals.Event
		want signals.Observation
	}{
		{"first", e1, signals.Observation{
			User:            engine.Window{Count1m: 1, Count1h: 1, Count24h: 1, DistinctDevices24h: 1},
			Device:          engine.Window{Count1m: 1, Count1h: 1, Count24h: 1, DistinctUsers24h: 1},
			IP:              engine.Window{Count1m: 1, Count1h: 1, Count24h: 1, DistinctUsers24h: 1},
			DeviceFirstSeen: t0, DeviceUsers30d: 1,
		}},
		{"repeat", e1, signals.Observation{
			User:            engine.Window{Count1m: 1, Count1h: 1, Count24h: 1, DistinctDevices24h: 1},
			Device:          engine.Window{Count1m: 1, Count1h: 1, Count24h: 1, DistinctUsers24h: 1},
			IP:              engine.Window{Count1m: 1, Count1h: 1, Count24h: 1, DistinctUsers24h: 1},
			DeviceFirstSeen: t0, DeviceUsers30d: 1,
		}},
		{"another event, same time", e2, signals.Observation{
			User:        engine.Window{Count1m: 1, Count1h: 1, Count24h: 1, DistinctDevices24h: 1},
			Device:      engine.Window{Count1m: 2, Count1h: 2, Count24h: 2, DistinctUsers24h: 2},
			IP:          engine.Window{Count1m: 2, Count1h: 2, Count24h: 2, DistinctUsers24h: 2},
			DeviceKnown: true, DeviceFirstSeen: t0, DeviceUsers30d: 2,
		}},
		{"a later event", e3, signals.Observation{
			User:            engine.Window{Count1m: 2, Count1h: 2, Count24h: 2, DistinctDevices24h: 2},
			Device:          engine.Window{Count1m: 1, Count1h: 1, Count24h: 1, DistinctUsers24h: 1},
			IP:              engine.Window{Count1m: 3, Count1h: 3, Count24h: 3, DistinctUsers24h: 2},
			DeviceFirstSeen: t0.Add(30 * time.Second), DeviceUsers30d: 1,
		}},
		{"first again: not recorded twice, counts what its windows hold", e1, signals.Observation{
			User:            engine.Window{Count1m: 2, Count1h: 2, Count24h: 2, DistinctDevices24h: 2},
			Device:          engine.Window{Count1m: 2, Count1h: 2, Count24h: 2, DistinctUsers24h: 2},
			IP:              engine.Window{Count1m: 3, Count1h: 3, Count24h: 3, DistinctUsers24h: 2},
			DeviceFirstSeen: t0, DeviceUsers30d: 2,
		}},
		{"first again with a later time: counted once, at that time", withAt(e1, t0.Add(40*time.Second)), signals.Observation{
			User:            engine.Window{Count1m: 2, Count1h: 2, Count24h: 2, DistinctDevices24h: 2},
			Device:          engine.Window{Count1m: 2, Count1h: 2, Count24h: 2, DistinctUsers24h: 2},
			IP:              engine.Window{Count1m: 3, Count1h: 3, Count24h: 3, DistinctUsers24h: 2},
			DeviceFirstSeen: t0, DeviceUsers30d: 2,
		}},
		{"third again", e3, signals.Observation{
			User:            engine.Window{Count1m: 2, Count1h: 2, Count24h: 2, DistinctDevices24h: 2},
			Device:          engine.Window{Count1m: 1, Count1h: 1, Count24h: 1, DistinctUsers24h: 1},
			IP:              engine.Window{Count1m: 3, Count1h: 3, Count24h: 3, DistinctUsers24h: 2},
			DeviceFirstSeen: t0.Add(30 * time.Second), DeviceUsers30d: 1,
		}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			checkObservation(t, observe(t, v, st.ev), st.want)
		})
	}
}

func withAt(ev signals.Event, at time.Time) signals.Event {
	ev.At = at
	return ev
}

// testEmptyIDs checks that an empty user, device or IP id is neither counted nor recorded.
func testEmptyIDs(t *testing.T, v signals.Velocity) {
	t0 := epoch()
	one := engine.Window{Count1m: 1, Count1h: 1, Count24h: 1}
	steps := []struct {
		name string
		ev   signals.Event
		want signals.Observation
	}{
		{"no ids", signals.Event{ID: "e-0", Action: "login", At: t0}, signals.Observation{}},
		{"user only", signals.Event{ID: "e-1", Action: "login", UserID: "u1", At: t0}, signals.Observation{User: one}},
		{"device only", signals.Event{ID: "e-2", Action: "login", DeviceID: "d1", At: t0}, signals.Observation{Device: one, DeviceFirstSeen: t0}},
		{"ip only", signals.Event{ID: "e-3", Action: "login", IP: "192.0.2.55", At: t0}, signals.Observation{IP: one}},
		{"all three: no empty user or device was recorded before", signals.Event{ID: "e-4", Action: "login", UserID: "u1", DeviceID: "d1", IP: "192.0.2.55", At: t0}, signals.Observation{
			User:        engine.Window{Count1m: 2, Count1h: 2, Count24h: 2, DistinctDevices24h: 1},
			Device:      engine.Window{Count1m: 2, Count1h: 2, Count24h: 2, DistinctUsers24h: 1},
			IP:          engine.Window{Count1m: 2, Count1h: 2, Count24h: 2, DistinctUsers24h: 1},
			DeviceKnown: true, DeviceFirstSeen: t0, DeviceUsers30d: 1,
		}},
		{"empty action is an action of its own", signals.Event{ID: "e-5", UserID: "u1", At: t0}, signals.Observation{
			User: engine.Window{Count1m: 1, Count1h: 1, Count24h: 1, DistinctDevices24h: 1},
		}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			checkObservation(t, observe(t, v, st.ev), st.want)
		})
	}
}

// testInvalidEvent checks that an event without an id or a time is refused.
func testInvalidEvent(t *testing.T, v signals.Velocity) {
	t0 := epoch()
	for _, ev := range []signals.Event{
		{Action: "login", UserID: "u1", At: t0},
		{ID: "no-time", Action: "login", UserID: "u1"},
	} {
		if _, err := v.Observe(context.Background(), ev); err == nil {
			t.Errorf("Observe(%+v) = nil error, want an error", ev)
		}
	}
	// Nothing was recorded by the refused events.
	obs := observe(t, v, signals.Event{ID: "valid", Action: "login", UserID: "u1", At: t0})
	checkWindow(t, "user", obs.User, engine.Window{Count1m: 1, Count1h: 1, Count24h: 1})
}

// testCanceledContext checks that a done context is reported and nothing is recorded.
func testCanceledContext(t *testing.T, v signals.Velocity) {
	t0 := epoch()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ev := signals.Event{ID: "c-1", Action: "login", UserID: "u1", At: t0}
	if _, err := v.Observe(ctx, ev); !errors.Is(err, context.Canceled) {
		t.Errorf("Observe with a canceled context: error = %v, want one wrapping context.Canceled", err)
	}
	obs := observe(t, v, ev)
	checkWindow(t, "user", obs.User, engine.Window{Count1m: 1, Count1h: 1, Count24h: 1})
}

// testConcurrent checks that concurrent events for one user, device and IP lose no
// increment: 1,000 of them at the same time see each count from 1 to 1,000 exactly once.
func testConcurrent(t *testing.T, v signals.Velocity) {
	t0 := epoch()
	const n = 1000
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		seen  [3]map[int64]int // user, device, IP Count1m → how many calls saw it
		first = make(chan error, 1)
	)
	for i := range seen {
		seen[i] = make(map[int64]int, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range n {
		wg.Go(func() {
			ev := signals.Event{ID: fmt.Sprintf("cc-%d", i), Action: "login", UserID: "hot-user", DeviceID: "hot-device", IP: "192.0.2.200", At: t0}
			obs, err := v.Observe(ctx, ev)
			if err != nil {
				select {
				case first <- err:
				default:
				}
				return
			}
			mu.Lock()
			seen[0][obs.User.Count1m]++
			seen[1][obs.Device.Count1m]++
			seen[2][obs.IP.Count1m]++
			mu.Unlock()
		})
	}
	wg.Wait()
	select {
	case err := <-first:
		t.Fatalf("concurrent Observe: %v", err)
	default:
	}
	for k, what := range []string{"user", "device", "ip"} {
		for c := int64(1); c <= n; c++ {
			if seen[k][c] != 1 {
				t.Errorf("%s Count1m = %d was returned %d times, want once", what, c, seen[k][c])
			}
		}
		if len(seen[k]) != n {
			t.Errorf("%s: %d distinct Count1m values, want %d", what, len(seen[k]), n)
		}
	}
	obs := observe(t, v, signals.Event{ID: "cc-final", Action: "login", UserID: "hot-user", DeviceID: "hot-device", IP: "192.0.2.200", At: t0})
	checkWindow(t, "final user", obs.User, engine.Window{Count1m: n + 1, Count1h: n + 1, Count24h: n + 1, DistinctDevices24h: 1})
	checkWindow(t, "final device", obs.Device, engine.Window{Count1m: n + 1, Count1h: n + 1, Count24h: n + 1, DistinctUsers24h: 1})
	checkWindow(t, "final ip", obs.IP, engine.Window{Count1m: n + 1, Count1h: n + 1, Count24h: n + 1, DistinctUsers24h: 1})
}

// testModel replays a random sequence of events (times jumping forward and sometimes
// back across every window bound, events observed again, ids left empty) and compares
// every Observation with model, a plain restatement of the contract.
func testModel(t *testing.T, v signals.Velocity) {
	r := rand.New(rand.NewPCG(7, 11))
	pick := func(ids ...string) string { return ids[r.IntN(len(ids))] }
	steps := []time.Duration{0, time.Millisecond, 30 * time.Second, time.Minute, 59 * time.Minute, time.Hour, 3 * time.Hour, 24 * time.Hour, -time.Minute, -time.Hour}
	m := newModel()
	at := epoch()
	var past []signals.Event
	for i := range 400 {
		var ev signals.Event
		if len(past) > 0 && r.IntN(10) == 0 {
			ev = past[r.IntN(len(past))] // observed again
			if r.IntN(2) == 0 {
				ev.At = at // and stamped with another time: still the same event
			}
		} else {
			at = at.Add(steps[r.IntN(len(steps))])
			ev = signals.Event{ID: "m-" + strconv.Itoa(i), Action: pick("login", "payout"), UserID: pick("", "u1", "u2", "u3", "u4", "u5"), DeviceID: pick("", "d1", "d2", "d3", "d4", "d5"), IP: pick("", "192.0.2.1", "192.0.2.2"), At: at}
			past = append(past, ev)
		}
		want := m.observe(ev)
		got := observe(t, v, ev)
		if got.User != want.User || got.Device != want.Device || got.IP != want.IP || got.DeviceKnown != want.DeviceKnown ||
			!got.DeviceFirstSeen.Equal(want.DeviceFirstSeen) || got.DeviceUsers30d != want.DeviceUsers30d {
			t.Fatalf("event %d %+v:\n got %+v\nwant %+v", i, ev, got, want)
		}
	}
}

// model is the contract of signals.Velocity restated as simply as possible, key by key
// as in Redis: per (kind, id, action) a set of event ids with their times; per (kind, id)
// a set of members with their last time; per device the first event.
type model struct {
	events  map[string]map[string]int64 // key → event id → ms
	members map[string]map[string]int64 // key → member → last ms
	first   map[string]modelFirst
}

type modelFirst struct {
	at int64
	id string
}

func newModel() *model {
	return &model{events: map[string]map[string]int64{}, members: map[string]map[string]int64{}, first: map[string]modelFirst{}}
}

func (m *model) observe(ev signals.Event) signals.Observation {
	const (
		minute = int64(time.Minute / time.Millisecond)
		hour   = 60 * minute
		day    = 24 * hour
	)
	at := ev.At.UnixMilli()
	count := func(key string) (w engine.Window) {
		set := m.events[key]
		if set == nil {
			set = map[string]int64{}
			m.events[key] = set
		}
		for id, t := range set {
			if t <= at-day {
				delete(set, id)
			}
		}
		if _, ok := set[ev.ID]; !ok {
			set[ev.ID] = at
		}
		for _, t := range set {
			w.Count24h++
			if t > at-hour {
				w.Count1h++
			}
			if t > at-minute {
				w.Count1m++
			}
		}
		return w
	}
	distinct := func(key, member string, window int64) int64 {
		set := m.members[key]
		if set == nil {
			set = map[string]int64{}
			m.members[key] = set
		}
		if member != "" {
			if last, ok := set[member]; !ok || last < at {
				set[member] = at
			}
		}
		for id, t := range set {
			if t <= at-window {
				delete(set, id)
			}
		}
		return int64(len(set))
	}
	var obs signals.Observation
	if ev.UserID != "" {
		obs.User = count("u:" + ev.UserID + ":" + ev.Action)
		obs.User.DistinctDevices24h = distinct("u:"+ev.UserID, ev.DeviceID, day)
	}
	if ev.DeviceID != "" {
		obs.Device = count("d:" + ev.DeviceID + ":" + ev.Action)
		obs.Device.DistinctUsers24h = distinct("d:"+ev.DeviceID, ev.UserID, day)
		obs.DeviceUsers30d = distinct("d30:"+ev.DeviceID, ev.UserID, 30*day)
		f, ok := m.first[ev.DeviceID]
		if !ok {
			f = modelFirst{at: at, id: ev.ID}
			m.first[ev.DeviceID] = f
		}
		obs.DeviceKnown = f.id != ev.ID
		obs.DeviceFirstSeen = time.UnixMilli(f.at).UTC()
	}
	if ev.IP != "" {
		obs.IP = count("ip:" + ev.IP + ":" + ev.Action)
		obs.IP.DistinctUsers24h = distinct("ip:"+ev.IP, ev.UserID, day)
	}
	return obs
}

// Benchmark measures Observe on a mix of 80% logins and 20% payouts, each user on a device
// of its own and one of a few users of a home IP 90% of the time (elsewhere otherwise), with
// event time advancing 1 ms per event. Two populations: "hot"
// (1,000 users and devices, 200 IPs: the state fits in the CPU caches, and keys are long
// lived) and "wide" (100,000 users and devices, 20,000 IPs: a few events per user, state
// far larger than the caches, so each lookup is a cache miss). Each population gets a
// fresh Velocity from newVelocity and runs "serial" (latency of one caller) and "parallel"
// (throughput of GOMAXPROCS×parallelism callers). The harness allocates nothing in the
// timed loop: event ids are made before the timer starts.
func Benchmark(b *testing.B, newVelocity func(b *testing.B) signals.Velocity, parallelism int) {
	for _, pop := range []struct {
		name       string
		users, ips int
	}{{"hot", 1_000, 200}, {"wide", 100_000, 20_000}} {
		b.Run(pop.name, func(b *testing.B) {
			benchmark(b, newVelocity(b), pop.users, pop.ips, parallelism)
		})
	}
}

func benchmark(b *testing.B, v signals.Velocity, users, ips, parallelism int) {
	t0 := epoch()
	userIDs := make([]string, users)
	deviceIDs := make([]string, users)
	for i := range users {
		userIDs[i] = "user-" + strconv.Itoa(i)
		deviceIDs[i] = "device-" + strconv.Itoa(i)
	}
	ipAddrs := make([]string, ips)
	for i := range ips {
		ipAddrs[i] = fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff)
	}
	makeEvent := func(r *rand.Rand, id string, seq int64) signals.Event {
		u := r.IntN(users)
		d := u
		if r.IntN(10) == 0 {
			d = r.IntN(users)
		}
		action := "login"
		if r.IntN(5) == 0 {
			action = "payout"
		}
		ip := u % ips
		if r.IntN(10) == 0 {
			ip = r.IntN(ips)
		}
		return signals.Event{ID: id, Action: action, UserID: userIDs[u], DeviceID: deviceIDs[d], IP: ipAddrs[ip], At: t0.Add(time.Duration(seq) * time.Millisecond)}
	}
	var run atomic.Int64 // makes event ids distinct across runs
	ids := func(n int) []string {
		prefix := "bench-" + strconv.FormatInt(run.Add(1), 10) + "-"
		out := make([]string, n)
		for i := range out {
			out[i] = prefix + strconv.Itoa(i)
		}
		return out
	}
	var clock atomic.Int64 // event time in ms after t0, shared by the runs
	ctx := context.Background()

	b.Run("serial", func(b *testing.B) {
		id := ids(b.N)
		r := rand.New(rand.NewPCG(1, uint64(run.Load())))
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if _, err := v.Observe(ctx, makeEvent(r, id[i], clock.Add(1))); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		id := ids(b.N)
		var next, seed atomic.Int64
		b.SetParallelism(parallelism)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			r := rand.New(rand.NewPCG(uint64(run.Load()), uint64(seed.Add(1))))
			for pb.Next() {
				if _, err := v.Observe(ctx, makeEvent(r, id[next.Add(1)-1], clock.Add(1))); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
