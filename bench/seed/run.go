package seed

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"

	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/engine/pii"
	"github.com/verdict-engine/verdict/signals/replay"
	"github.com/verdict-engine/verdict/store"
)

// Sink receives decided events in time order, one batch at a time, each decision with
// the labels chosen for it. It is called from one goroutine.
type Sink func(ctx context.Context, batch []store.LabeledDecision) error

// Options tune Run.
type Options struct {
	Workers   int // evaluation goroutines (default GOMAXPROCS)
	BatchSize int // decisions per Sink call (default 2,000)
	// Progress, when set, is called after each batch with the decisions done so far.
	Progress func(done int)
	// Actor and CorrelationID are stamped on every record and label (default "seed").
	Actor string
	// Private makes the records as the live path does: personal data (the IP) leaves the
	// stored snapshot, pseudonymised with Pseudonyms (or dropped when it is nil), and the
	// removed values are handed to the writer in DecisionRecord.PIIPlain to be sealed.
	// Without it the snapshot keeps the generated input whole (an export file).
	Private    bool
	Pseudonyms *pii.Pseudonymizer
}

// Stats summarizes a run.
type Stats struct {
	Decisions int
	// First and Last are the times of the first and last decision written: with few
	// decisions, or campaigns that use the budget up, they span less than the days asked.
	First, Last time.Time
	ByScenario  map[string]int
	ByOutcome   map[string]int
	Labels      map[string]int
}

// response is the stored answer, shaped as POST /v1/decide answers.
type response struct {
	DecisionID         string          `json:"decision_id"`
	Action             string          `json:"action"`
	Outcome            engine.Outcome  `json:"outcome"`
	Score              float64         `json:"score"`
	Reasons            []engine.Reason `json:"reasons"`
	StepUp             string          `json:"step_up,omitempty"`
	Policy             policyRef       `json:"policy"`
	SignalsUnavailable []string        `json:"signals_unavailable"`
	CreatedAt          time.Time       `json:"created_at"`
}

type policyRef struct {
	Action  string `json:"action"`
	Version string `json:"version"`
	Hash    string `json:"hash"`
}

type item struct {
	ev  Event
	id  string
	in  *engine.Input
	out store.LabeledDecision
	err error
}

type batch struct {
	items []item
	done  chan struct{}
}

// Run generates cfg's history and decides every event through set, with signals as they
// stood at the event's time (signals/replay), in parallel, handing decisions to sink in
// time order. Decision ids are UUIDv7 of the event time. Labels: fraud events get fraud
// (a payout that was let through gets chargeback instead, at random), about 90% of them;
// legitimate decisions blocked or sent to review get false_positive half of the time,
// and 10% of the others legit. It stops at the first error of sink or evaluation, or when
// ctx is done.
func Run(ctx context.Context, cfg Config, set *engine.PolicySet, sink Sink, o Options) (Stats, error) {
	gen, err := NewGenerator(cfg)
	if err != nil {
		return Stats{}, err
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 2000
	}
	if o.Actor == "" {
		o.Actor = "seed"
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	eng := engine.New(set, engine.WithEvalTimeout(0))
	ids := rand.New(rand.NewPCG(cfg.Seed, 0x1d5))

	work := make(chan *batch, o.Workers*2)
	order := make(chan *batch, o.Workers*4)
	var genErr error
	go func() {
		defer close(work)
		defer close(order)
		rp := replay.New()
		for ctx.Err() == nil {
			b := &batch{items: make([]item, 0, o.BatchSize), done: make(chan struct{})}
			for len(b.items) < o.BatchSize {
				ev, ok := gen.Next()
				if !ok {
					break
				}
				it := item{ev: ev, id: uuidV7(ev.At, ids), in: ev.Input()}
				if err := rp.Apply(replay.Event{ID: it.id, Action: ev.Action, UserID: ev.UserID, DeviceID: ev.DeviceID, IP: ev.IP, At: ev.At}, &it.in.Signals); err != nil {
					genErr = err
					cancel()
					break
				}
				b.items = append(b.items, it)
			}
			if len(b.items) == 0 {
				return
			}
			select {
			case order <- b:
			case <-ctx.Done():
				return
			}
			work <- b
		}
	}()
	var wg sync.WaitGroup
	for range o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				for i := range b.items {
					decide(ctx, eng, set, &b.items[i], &o)
				}
				close(b.done)
			}
		}()
	}
	st := Stats{ByScenario: map[string]int{}, ByOutcome: map[string]int{}, Labels: map[string]int{}}
	out := make([]store.LabeledDecision, 0, o.BatchSize)
	var runErr error
	for b := range order {
		<-b.done
		if runErr != nil {
			continue
		}
		out = out[:0]
		for i := range b.items {
			it := &b.items[i]
			if it.err != nil {
				runErr = it.err
				break
			}
			out = append(out, it.out)
			if at := it.out.CreatedAt; st.First.IsZero() || at.Before(st.First) {
				st.First = at
			}
			if at := it.out.CreatedAt; at.After(st.Last) {
				st.Last = at
			}
			st.ByScenario[it.ev.Scenario]++
			st.ByOutcome[it.out.Outcome]++
			for _, l := range it.out.Labels {
				st.Labels[l.Label]++
			}
		}
		if runErr == nil {
			runErr = sink(ctx, out)
		}
		if runErr != nil {
			cancel()
			continue
		}
		st.Decisions += len(out)
		if o.Progress != nil {
			o.Progress(st.Decisions)
		}
	}
	wg.Wait()
	switch {
	case genErr != nil:
		return st, genErr
	case runErr != nil:
		return st, runErr
	}
	return st, ctx.Err()
}

// decide evaluates one event as the live server would and fills it.out.
func decide(ctx context.Context, eng *engine.Engine, set *engine.PolicySet, it *item, o *Options) {
	actor := o.Actor
	ev, in := &it.ev, it.in
	p, ok := set.Policy(ev.Action)
	if !ok {
		it.err = fmt.Errorf("seed: %w: %q", engine.ErrUnknownAction, ev.Action)
		return
	}
	d, err := eng.Evaluate(ctx, p, in)
	failMode := ""
	if err != nil {
		if errors.Is(err, context.Canceled) {
			it.err = err
			return
		}
		d = engine.ApplyFailMode(d, p.FailMode, engine.CausePolicyError, true)
		failMode = p.FailMode.String()
	}
	snapshot, removed := *in, []pii.Field(nil)
	if o.Private {
		snapshot, removed = pii.Split(in, o.Pseudonyms)
	}
	inJSON, err := json.Marshal(&snapshot)
	if err != nil {
		it.err = fmt.Errorf("seed: encode input: %w", err)
		return
	}
	var piiJSON []byte
	if removed != nil {
		if piiJSON, err = json.Marshal(removed); err != nil {
			it.err = fmt.Errorf("seed: encode personal data: %w", err)
			return
		}
	}
	at := ev.At.UTC()
	resp := response{DecisionID: it.id, Action: ev.Action, Outcome: d.Outcome, Score: d.Score, Reasons: d.Reasons, StepUp: d.StepUp,
		Policy: policyRef{Action: d.Policy.Action, Version: d.Policy.Version, Hash: d.Policy.Hash}, SignalsUnavailable: in.Signals.Unavailable, CreatedAt: at}
	respJSON, err := json.Marshal(resp)
	if err != nil {
		it.err = fmt.Errorf("seed: encode response: %w", err)
		return
	}
	codes := make([]string, len(d.Reasons))
	for i, r := range d.Reasons {
		codes[i] = r.Code
	}
	rec := store.DecisionRecord{
		ID: it.id, Action: ev.Action, SubjectID: ev.UserID, Outcome: d.Outcome.String(), Score: d.Score, ReasonCodes: codes,
		PolicyVersion: d.Policy.Version, PolicyHash: d.Policy.Hash, FailMode: failMode, Input: inJSON, PIIPlain: piiJSON, Response: respJSON,
		CreatedAt: at, Actor: actor, CorrelationID: "seed",
	}
	it.out = store.LabeledDecision{DecisionRecord: rec}
	if l := Label(ev, d.Outcome); l != "" {
		it.out.Labels = []store.OutcomeLabel{{DecisionID: it.id, Label: l, Tags: []string{"synthetic", ev.Scenario}, CreatedAt: at.Add(labelDelay(l)), Actor: actor}}
	}
}

// Label returns the label a decision on ev with the live outcome gets, or "" for none.
func Label(ev *Event, live engine.Outcome) string {
	switch {
	case ev.Fraud && ev.Draw < 0.9:
		if ev.Action == "payout" && live <= engine.StepUp && ev.Draw < 0.5 {
			return store.LabelChargeback
		}
		return store.LabelFraud
	case ev.Fraud:
		return ""
	case live >= engine.Review:
		if ev.Draw < 0.5 {
			return store.LabelFalsePositive
		}
	case ev.Draw < 0.1:
		return store.LabelLegit
	}
	return ""
}

func labelDelay(l string) time.Duration {
	if l == store.LabelChargeback {
		return 30 * 24 * time.Hour
	}
	return 48 * time.Hour
}

// uuidV7 returns a UUIDv7 (RFC 9562) whose timestamp is t's Unix milliseconds and whose
// random bits come from r, so ids sort by event time and a seed reproduces them.
func uuidV7(t time.Time, r *rand.Rand) string {
	var u [16]byte
	ms := uint64(t.UnixMilli())
	binary.BigEndian.PutUint64(u[0:8], ms<<16)
	binary.BigEndian.PutUint64(u[8:16], r.Uint64())
	rb := r.Uint32()
	u[6] = 0x70 | byte(rb>>8)&0x0f
	u[7] = byte(rb)
	u[8] = 0x80 | u[8]&0x3f
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], u[10:16])
	return string(s[:])
}
