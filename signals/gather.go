// Package signals gathers the facts a decision needs — velocity counters, device
// reputation, the subject's latest verification and list memberships — concurrently and
// within a deadline, marking the sources that failed or timed out as unavailable.
package signals

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/store"
)

// Source names as they appear in signals.unavailable and in metrics.
const (
	SourceVelocity     = "velocity"
	SourceDevice       = "device"
	SourceLists        = "lists"
	SourceVerification = "verification"
)

// VerificationSource returns a subject's latest verification (store.Verifications).
type VerificationSource interface {
	LatestVerification(ctx context.Context, userID string) (store.Verification, error)
}

// Request identifies what a decision is about.
type Request struct {
	EventID  string
	Action   string
	UserID   string
	DeviceID string
	IP       netip.Addr
	Country  string
	// EmailDomain is the domain of the subject's email (signals.EmailDomain), for email
	// lists; the address itself never reaches the signals.
	EmailDomain string
	At          time.Time
}

// Timings are the time each source took. Zero means the source was not asked.
type Timings struct {
	Velocity     time.Duration
	Lists        time.Duration
	Verification time.Duration
}

// Result is the gathered signals plus what it took to get them.
type Result struct {
	Signals engine.Signals
	Timings Timings
	// Errors holds the error of each unavailable source.
	Errors map[string]error
}

// Gatherer gathers signals from its sources. It is safe for concurrent use.
type Gatherer struct {
	velocity      Velocity
	lists         *Lists
	verifications VerificationSource
	timeout       time.Duration
}

// GatherOption configures a Gatherer.
type GatherOption func(*Gatherer)

// WithSourceTimeout bounds each source (default 50 ms); the caller's deadline bounds
// them all.
func WithSourceTimeout(d time.Duration) GatherOption { return func(g *Gatherer) { g.timeout = d } }

// NewGatherer returns a Gatherer over the given sources.
func NewGatherer(v Velocity, l *Lists, vs VerificationSource, opts ...GatherOption) *Gatherer {
	g := &Gatherer{velocity: v, lists: l, verifications: vs, timeout: 50 * time.Millisecond}
	for _, o := range opts {
		o(g)
	}
	return g
}

type velocityResult struct {
	obs Observation
	err error
	d   time.Duration
}

type verificationResult struct {
	v   store.Verification
	err error
	d   time.Duration
}

// Gather asks every source at once and returns when all have answered or timed out. It
// records the request as a velocity event (counts include it). A failing source is listed
// in Signals.Unavailable; Gather itself never fails.
func (g *Gatherer) Gather(ctx context.Context, req Request) Result {
	res := Result{Signals: engine.Signals{Verification: engine.Verification{Status: "none", ReasonCodes: []string{}}, Unavailable: []string{}}}
	sctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()

	velCh := make(chan velocityResult, 1)
	go func() {
		start := time.Now()
		obs, err := g.velocity.Observe(sctx, Event{ID: req.EventID, Action: req.Action, UserID: req.UserID, DeviceID: req.DeviceID, IP: ipString(req.IP), At: req.At})
		velCh <- velocityResult{obs, err, time.Since(start)}
	}()
	var verCh chan verificationResult
	if req.UserID != "" && g.verifications != nil {
		verCh = make(chan verificationResult, 1)
		go func() {
			start := time.Now()
			v, err := g.verifications.LatestVerification(sctx, req.UserID)
			verCh <- verificationResult{v, err, time.Since(start)}
		}()
	}

	// Lists are matched in memory while the others are in flight.
	start := time.Now()
	if m := g.lists.Matcher(); m != nil {
		res.Signals.Lists = m.Match(Subject{UserID: req.UserID, DeviceID: req.DeviceID, IP: req.IP, Country: req.Country, EmailDomain: req.EmailDomain})
	} else {
		res.Signals.Lists = map[string]bool{}
		res.fail(SourceLists, errors.New("lists not loaded"))
	}
	res.Timings.Lists = time.Since(start)
	flagged := res.Signals.Lists["deny_device"] || res.Signals.Lists["watch_device"]

	select {
	case vr := <-velCh:
		res.Timings.Velocity = vr.d
		if vr.err != nil {
			res.fail(SourceVelocity, vr.err)
			res.fail(SourceDevice, vr.err)
		} else {
			res.Signals.Velocity = engine.Velocity{User: vr.obs.User, Device: vr.obs.Device, IP: vr.obs.IP}
			if req.DeviceID != "" && vr.obs.DeviceKnown {
				res.Signals.Device = engine.DeviceReputation{
					Known:     vr.obs.DeviceKnown,
					AgeHours:  max(0, req.At.Sub(vr.obs.DeviceFirstSeen).Hours()),
					UsersSeen: vr.obs.DeviceUsers30d,
				}
			} else if req.DeviceID != "" {
				// First sighting: age 0, and only this request's user.
				res.Signals.Device = engine.DeviceReputation{UsersSeen: vr.obs.DeviceUsers30d}
			}
		}
	case <-sctx.Done():
		res.Timings.Velocity = time.Since(start)
		res.fail(SourceVelocity, fmt.Errorf("velocity: %w", sctx.Err()))
		res.fail(SourceDevice, fmt.Errorf("device: %w", sctx.Err()))
	}
	res.Signals.Device.Flagged = flagged

	if verCh != nil {
		select {
		case vr := <-verCh:
			res.Timings.Verification = vr.d
			switch {
			case errors.Is(vr.err, store.ErrNotFound):
			case vr.err != nil:
				res.fail(SourceVerification, vr.err)
			default:
				rc := vr.v.ReasonCodes
				if rc == nil {
					rc = []string{}
				}
				res.Signals.Verification = engine.Verification{
					Status:      vr.v.Status,
					Provider:    vr.v.Provider,
					Score:       vr.v.Score,
					ReasonCodes: rc,
					AgeDays:     max(0, req.At.Sub(vr.v.UpdatedAt).Hours()/24),
				}
			}
		case <-sctx.Done():
			res.Timings.Verification = time.Since(start)
			res.fail(SourceVerification, fmt.Errorf("verification: %w", sctx.Err()))
		}
	}
	return res
}

func (r *Result) fail(source string, err error) {
	r.Signals.Unavailable = append(r.Signals.Unavailable, source)
	if r.Errors == nil {
		r.Errors = map[string]error{}
	}
	r.Errors[source] = err
}

func ipString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.Unmap().String()
}
