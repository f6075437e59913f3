package load

import (
	"runtime"
	"syscall"
	"time"
)

// prSetTimerSlack is PR_SET_TIMERSLACK from <linux/prctl.h>.
const prSetTimerSlack = 29

// pacer sleeps until absolute times with ~50 µs precision. time.Sleep cannot: below a
// millisecond the Go runtime parks in epoll with a 1 ms timeout, so an open loop at
// 3,000/s paced with time.Sleep sends in bursts and charges the server up to a
// millisecond of the generator's lateness. The pacer locks its goroutine to a thread,
// sets the thread's timer slack to 1 ns and sleeps in nanosleep(2).
type pacer struct{}

func startPacer() *pacer {
	runtime.LockOSThread()
	_, _, _ = syscall.Syscall(syscall.SYS_PRCTL, prSetTimerSlack, 1, 0)
	return &pacer{}
}

// stop restores the thread's default timer slack and unlocks it. The thread must not
// exit with the goroutine: a child process started from it with Pdeathsig would die too.
func (*pacer) stop() {
	_, _, _ = syscall.Syscall(syscall.SYS_PRCTL, prSetTimerSlack, 0, 0)
	runtime.UnlockOSThread()
}

// sleepUntil returns at t or soon after. Interrupted sleeps (the runtime's preemption
// signals) resume with the remaining time.
func (*pacer) sleepUntil(t time.Time) {
	for {
		d := time.Until(t)
		if d <= 0 {
			return
		}
		if d > 5*time.Millisecond {
			// Long waits need no precision: leave the thread to the runtime.
			time.Sleep(d - 2*time.Millisecond)
			continue
		}
		ts := syscall.NsecToTimespec(int64(d))
		_ = syscall.Nanosleep(&ts, nil)
	}
}
