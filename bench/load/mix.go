package load

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
)

// Format is the shape of a request body.
type Format string

const (
	// FormatVerdict is the body of Verdict's POST /v1/decide.
	FormatVerdict Format = "verdict"
	// FormatOPA is the body of OPA's data API, {"input": ...}, for
	// POST /v1/data/verdict/<action>/decision. The input holds the same request as
	// FormatVerdict plus the signals Verdict would gather for it, so OPA evaluates the
	// same policy on the same document without gathering anything.
	FormatOPA Format = "opa"
)

// ParseFormat returns the Format named s, or an error naming the known formats.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case FormatVerdict, FormatOPA:
		return f, nil
	}
	return "", fmt.Errorf("unknown format %q: want verdict or opa", s)
}

// Path returns the request path that decides action for a server speaking f.
func (f Format) Path(action string) string {
	if f == FormatOPA {
		return "/v1/data/verdict/" + action + "/decision"
	}
	return "/v1/decide"
}

// Outcome returns the decision outcome (allow, step_up, review, block) in a 200 answer
// of a server speaking f. It returns an error when the answer holds no outcome, which is
// what OPA answers ({}) when the policy is not loaded.
func (f Format) Outcome(body []byte) (string, error) {
	var v struct {
		Outcome string `json:"outcome"`
		Result  *struct {
			Outcome string `json:"outcome"`
		} `json:"result"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return "", fmt.Errorf("decode answer: %w", err)
	}
	o := v.Outcome
	if f == FormatOPA {
		o = ""
		if v.Result != nil {
			o = v.Result.Outcome
		}
	}
	if o == "" {
		return "", fmt.Errorf("answer holds no outcome: %.200s", body)
	}
	return o, nil
}

// Mix describes the request mix: many users, each with a device and an IP of their own,
// and a share of risky requests (shared devices, big crypto payouts, bots, a small pool
// of IPs, new beneficiaries).
type Mix struct {
	Action string  // the action decided, e.g. "payout"
	Users  int     // distinct users
	Risky  float64 // share of risky requests, in [0, 1]
	Seed   uint64  // the same seed yields the same requests in every format
}

// DefaultMix is the mix of the published figures: payouts by 50,000 users, 10% risky.
func DefaultMix() Mix { return Mix{Action: "payout", Users: 50000, Risky: 0.1, Seed: 1} }

// Bodies returns n request bodies in format f. Bodies of the same Mix in different
// formats carry the same requests in the same order. It returns an error when the mix
// is invalid.
func (m Mix) Bodies(f Format, n int) ([][]byte, error) {
	if _, err := ParseFormat(string(f)); err != nil {
		return nil, err
	}
	switch {
	case m.Action == "":
		return nil, errors.New("mix: action is required")
	case m.Users <= 0:
		return nil, errors.New("mix: users must be positive")
	case m.Risky < 0 || m.Risky > 1:
		return nil, errors.New("mix: risky must be within [0, 1]")
	case n <= 0 || n > 1<<22:
		return nil, errors.New("mix: body count must be within [1, 4194304]")
	}
	// Two streams: the requests must not depend on whether signals are drawn.
	reqRNG := rand.New(rand.NewPCG(m.Seed, 0x7665726469637431))
	sigRNG := rand.New(rand.NewPCG(m.Seed, 0x7369676e616c7331))
	// One backing array for all bodies keeps the pool compact and cheap for the GC.
	buf := make([]byte, 0, n*bodySizeHint(f))
	ends := make([]int, n)
	for i := range n {
		r := m.request(reqRNG)
		var v any = &r
		if f == FormatOPA {
			r.Signals = signalsFor(&r, sigRNG)
			v = opaBody{Input: &r}
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("mix: encode body: %w", err)
		}
		buf = append(buf, b...)
		ends[i] = len(buf)
	}
	out := make([][]byte, n)
	start := 0
	for i, end := range ends {
		out[i] = buf[start:end:end]
		start = end
	}
	return out, nil
}

func bodySizeHint(f Format) int {
	if f == FormatOPA {
		return 1100
	}
	return 420
}

type opaBody struct {
	Input *request `json:"input"`
}

// request is a /v1/decide body; Signals is only set for FormatOPA.
type request struct {
	Action   string          `json:"action"`
	Subject  subject         `json:"subject"`
	Device   device          `json:"device"`
	Context  requestContext  `json:"context"`
	Behavior behavior        `json:"behavior"`
	Signals  *gatheredSignal `json:"signals,omitempty"`

	userIdx  int  // which user, for the signals
	shared   bool // the device is shared by many users
	sharedIP bool // the IP is one of a small risky pool
}

type subject struct {
	ID             string `json:"id"`
	AccountAgeDays int    `json:"account_age_days"`
	Country        string `json:"country"`
	EmailVerified  bool   `json:"email_verified"`
}

type device struct {
	ID       string `json:"id"`
	Platform string `json:"platform"`
}

type requestContext struct {
	IP             string  `json:"ip"`
	Country        string  `json:"country"`
	Amount         float64 `json:"amount"`
	Currency       string  `json:"currency"`
	PayoutMethod   string  `json:"payout_method"`
	NewBeneficiary bool    `json:"new_beneficiary"`
	AuthMethod     string  `json:"auth_method"`
}

type behavior struct {
	BotScore          float64 `json:"bot_score"`
	SessionAgeSeconds int     `json:"session_age_seconds"`
}

func (m Mix) request(rng *rand.Rand) request {
	u := rng.IntN(m.Users)
	risky := rng.Float64() < m.Risky
	r := request{
		Action:   m.Action,
		Subject:  subject{ID: "user-" + strconv.Itoa(u), AccountAgeDays: 30 + u%900, Country: "DE", EmailVerified: true},
		Device:   device{ID: "dev-" + strconv.Itoa(u), Platform: "ios"},
		Context:  requestContext{IP: fmt.Sprintf("10.%d.%d.%d", u>>16&0xff, u>>8&0xff, u&0xff), Country: "DE", Amount: float64(20 + rng.IntN(480)), Currency: "EUR", PayoutMethod: "bank", AuthMethod: "password"},
		Behavior: behavior{BotScore: float64(rng.IntN(200)) / 1000, SessionAgeSeconds: 30 + rng.IntN(600)},
		userIdx:  u,
	}
	if risky {
		switch rng.IntN(4) {
		case 0:
			r.Device.ID, r.shared = "shared-"+strconv.Itoa(rng.IntN(20)), true
		case 1:
			r.Context.Amount, r.Context.PayoutMethod = float64(5000+rng.IntN(20000)), "crypto"
		case 2:
			r.Behavior.BotScore = 0.9
		case 3:
			r.Context.IP, r.sharedIP = "198.51.100."+strconv.Itoa(rng.IntN(8)), true
		}
		r.Context.NewBeneficiary = rng.IntN(2) == 0
	}
	return r
}

// gatheredSignal mirrors engine.Signals as Verdict gathers them on a fresh store during
// a benchmark: no identity verifications, no list entries, devices first seen minutes
// ago, small velocity counts.
type gatheredSignal struct {
	Verification verification    `json:"verification"`
	Velocity     velocity        `json:"velocity"`
	Device       deviceSignal    `json:"device"`
	Lists        map[string]bool `json:"lists"`
	Unavailable  []string        `json:"unavailable"`
}

type verification struct {
	Status      string   `json:"status"`
	Provider    string   `json:"provider"`
	Score       float64  `json:"score"`
	ReasonCodes []string `json:"reason_codes"`
	AgeDays     float64  `json:"age_days"`
}

type velocity struct {
	User   window `json:"user"`
	Device window `json:"device"`
	IP     window `json:"ip"`
}

type window struct {
	Count1m            int `json:"count_1m"`
	Count1h            int `json:"count_1h"`
	Count24h           int `json:"count_24h"`
	DistinctUsers24h   int `json:"distinct_users_24h"`
	DistinctDevices24h int `json:"distinct_devices_24h"`
}

type deviceSignal struct {
	Known     bool    `json:"known"`
	AgeHours  float64 `json:"age_hours"`
	UsersSeen int     `json:"users_seen"`
	Flagged   bool    `json:"flagged"`
}

// listNames are the lists Verdict matches every request against.
var listNames = []string{
	"allow_device", "allow_ip", "allow_user",
	"deny_country", "deny_device", "deny_ip", "deny_user",
	"watch_device", "watch_ip", "watch_user",
}

func signalsFor(r *request, rng *rand.Rand) *gatheredSignal {
	count := func() window { n := 1 + rng.IntN(3); return window{Count1m: 1, Count1h: n, Count24h: n} }
	user, dev, ip := count(), count(), count()
	user.DistinctDevices24h = 1
	dev.DistinctUsers24h, ip.DistinctUsers24h = 1, 1
	usersSeen := 1
	if r.shared {
		usersSeen = 2 + rng.IntN(30)
		dev.DistinctUsers24h = usersSeen
	}
	if r.sharedIP {
		ip.DistinctUsers24h = 2 + rng.IntN(100)
	}
	known := rng.IntN(10) > 0
	age := 0.0
	if known {
		age = float64(rng.IntN(600)) / 100 // first seen earlier in the run
	}
	lists := make(map[string]bool, len(listNames))
	for _, n := range listNames {
		lists[n] = false
	}
	return &gatheredSignal{
		Verification: verification{Status: "none", ReasonCodes: []string{}},
		Velocity:     velocity{User: user, Device: dev, IP: ip},
		Device:       deviceSignal{Known: known, AgeHours: age, UsersSeen: usersSeen},
		Lists:        lists,
		Unavailable:  []string{},
	}
}

// Bodies hands out request bodies in turn, cycling through them. It is safe for
// concurrent use; successive runs over the same Bodies continue where the last stopped.
type Bodies struct {
	b    [][]byte
	next atomic.Uint64
}

// NewBodies returns a Bodies over b, which must not be empty and is not copied.
func NewBodies(b [][]byte) *Bodies { return &Bodies{b: b} }

// Next returns the next body. The caller must not modify it.
func (b *Bodies) Next() []byte {
	i := b.next.Add(1) - 1
	return b.b[i%uint64(len(b.b))]
}

// Len returns the number of distinct bodies.
func (b *Bodies) Len() int { return len(b.b) }
