// Package signals gathers the facts a decision needs — velocity counters, device
// reputation, the subject's latest verification and list memberships — concurrently and
// within a deadline, marking the sources that failed or timed out as unavailable.
package signals

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
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
	// Sources are the sources to gather: those the action's policy, and its shadow
	// versions, read (engine.Policy.Reads). The others are listed in
	// Signals.NotGathered and their failures are no concern of this decision. The
	// velocity event is recorded whatever Sources says.
	Sources engine.Sources
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
	// Errors holds the error of each unavailable source, and the velocity error of a
	// decision that gathered neither velocity nor device (its event was not recorded).
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

// Gather asks every source of req.Sources at once and returns when all have answered or
// timed out. It always records the request as a velocity event (counts include it), so
// that later decisions count it whether or not this one reads velocity. A failing source
// is listed in Signals.Unavailable, a source not asked in Signals.NotGathered; Gather
// itself never fails.
func (g *Gatherer) Gather(ctx context.Context, req Request) Result {
	want := req.Sources
	res := Result{Signals: engine.Signals{Unavailable: []string{}}}
	if want != engine.AllSources {
		res.Signals.NotGathered = (engine.AllSources &^ want).Names()
	}
	if want.Has(engine.SourceVerification) {
		res.Signals.Verification = engine.Verification{Status: "none", ReasonCodes: []string{}}
	}
	sctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()

	velCh := make(chan velocityResult, 1)
	go func() {
		start := time.Now()
		obs, err := g.velocity.Observe(sctx, Event{ID: req.EventID, Action: req.Action, UserID: req.UserID, DeviceID: req.DeviceID, IP: ipString(req.IP), At: req.At})
		velCh <- velocityResult{obs, err, time.Since(start)}
	}()
	var verCh chan verificationResult
	if want.Has(engine.SourceVerification) && req.UserID != "" && g.verifications != nil {
		verCh = make(chan verificationResult, 1)
		go func() {
			start := time.Now()
			v, err := g.verifications.LatestVerification(sctx, req.UserID)
			verCh <- verificationResult{v, err, time.Since(start)}
		}()
	}

	// Lists are matched in memory while the others are in flight; device.flagged comes
	// from them too.
	start := time.Now()
	var lists map[string]bool
	if want&(engine.SourceLists|engine.SourceDevice) != 0 {
		if m := g.lists.Matcher(); m != nil {
			lists = m.Match(Subject{UserID: req.UserID, DeviceID: req.DeviceID, IP: req.IP, Country: req.Country, EmailDomain: req.EmailDomain})
		} else {
			lists = map[string]bool{}
			switch err := errors.New("lists not loaded"); {
			case want.Has(engine.SourceLists):
				res.fail(SourceLists, err)
			default:
				res.fail(SourceDevice, err) // device.flagged is unknown
			}
		}
		res.Timings.Lists = time.Since(start)
	}
	if want.Has(engine.SourceLists) {
		res.Signals.Lists = lists
	}
	flagged := lists["deny_device"] || lists["watch_device"]

	// The velocity event is waited for even when neither velocity nor device is
	// gathered: it is recorded for later decisions, and a failure to record it is reported
	// in Errors (as velocity) whether or not this decision reads it.
	velWanted, devWanted := want.Has(engine.SourceVelocity), want.Has(engine.SourceDevice)
	select {
	case vr := <-velCh:
		res.Timings.Velocity = vr.d
		if vr.err != nil {
			res.failIf(velWanted, SourceVelocity, vr.err)
			res.failIf(devWanted, SourceDevice, vr.err)
			break
		}
		if velWanted {
			res.Signals.Velocity = engine.Velocity{User: vr.obs.User, Device: vr.obs.Device, IP: vr.obs.IP}
		}
		if devWanted && req.DeviceID != "" && vr.obs.DeviceKnown {
			res.Signals.Device = engine.DeviceReputation{
				Known:     vr.obs.DeviceKnown,
				AgeHours:  max(0, req.At.Sub(vr.obs.DeviceFirstSeen).Hours()),
				UsersSeen: vr.obs.DeviceUsers30d,
			}
		} else if devWanted && req.DeviceID != "" {
			// First sighting: age 0, and only this request's user.
			res.Signals.Device = engine.DeviceReputation{UsersSeen: vr.obs.DeviceUsers30d}
		}
	case <-sctx.Done():
		res.Timings.Velocity = time.Since(start)
		res.failIf(velWanted, SourceVelocity, fmt.Errorf("velocity: %w", sctx.Err()))
		res.failIf(devWanted, SourceDevice, fmt.Errorf("device: %w", sctx.Err()))
	}
	if devWanted {
		res.Signals.Device.Flagged = flagged
	}

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

func (r *Result) fail(source string, err error) { r.failIf(true, source, err) }

// failIf records source's error and, when the source was gathered, lists it as
// unavailable. Only velocity's error is recorded when not gathered (the event it records
// may be lost); any other source not gathered fails silently.
func (r *Result) failIf(gathered bool, source string, err error) {
	if gathered && !slices.Contains(r.Signals.Unavailable, source) {
		r.Signals.Unavailable = append(r.Signals.Unavailable, source)
	} else if !gathered && source != SourceVelocity {
		return
	}
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
