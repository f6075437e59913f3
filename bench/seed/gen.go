// Package seed generates a synthetic, labelled decision history for backtests and
// benchmarks: mostly legitimate users (a few devices, home IPs and countries, regular
// logins and payouts, verified identities) with bursts of account takeover, device farms,
// bonus abuse and credential stuffing mixed in. Every event is a request shaped like the
// policy input document; Run decides each one with point-in-time signals through a policy
// set, as the live server would have, and hands out stored decisions with their labels.
package seed

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/verdict-engine/verdict/engine"
)

// Scenarios an event can belong to.
const (
	ScenarioLegit     = "legit"
	ScenarioATO       = "account_takeover"
	ScenarioFarm      = "device_farm"
	ScenarioAbuse     = "bonus_abuse"
	ScenarioStuffing  = "credential_stuffing"
	scenarioMaxLength = 32
)

// Request is one decision request, typed; Input turns it into the policy input document.
type Request struct {
	Action         string
	UserID         string
	AccountAgeDays float64
	SubjectCountry string
	EmailVerified  bool
	PhoneVerified  bool
	DeviceID       string
	Platform       string
	Emulator       bool
	Rooted         bool
	IP             string
	Country        string
	// login
	AuthMethod     string
	FailedAttempts float64
	// payout
	Amount         float64
	Currency       string
	PayoutMethod   string
	NewBeneficiary bool
	// behavior
	BotScore   float64
	SessionAge float64
	Paste      bool
	// recorded signals: lists and verification as the live server saw them
	Verification    engine.Verification
	DisposableEmail bool
}

// Event is one generated request at its time, with what really happened.
type Event struct {
	At time.Time
	Request
	Scenario string
	Fraud    bool
	// Draw is a uniform number in [0, 1) fixed at generation, used to pick labels
	// deterministically whatever the evaluation order.
	Draw float64
	seq  uint64 // generation order, to sort events at equal times stably
}

var listNames = []string{"allow_device", "allow_ip", "allow_user", "deny_country", "deny_device", "deny_ip", "deny_user", "watch_device", "watch_ip", "watch_user"}

// Input returns the policy input document of the request, with the recorded lists and
// verification and empty velocity and device signals (filled by replay).
func (r *Request) Input() *engine.Input {
	in := &engine.Input{
		Action: r.Action,
		Subject: map[string]any{"id": r.UserID, "account_age_days": r.AccountAgeDays, "country": r.SubjectCountry,
			"email_verified": r.EmailVerified, "phone_verified": r.PhoneVerified},
		Device:   map[string]any{"id": r.DeviceID, "platform": r.Platform, "emulator": r.Emulator, "rooted": r.Rooted},
		Context:  map[string]any{"ip": r.IP, "country": r.Country},
		Behavior: map[string]any{"bot_score": r.BotScore, "session_age_seconds": r.SessionAge, "paste_in_credentials": r.Paste},
	}
	switch r.Action {
	case "login":
		in.Context["auth_method"] = r.AuthMethod
		in.Context["failed_attempts"] = r.FailedAttempts
	case "payout":
		in.Context["amount"] = r.Amount
		in.Context["currency"] = r.Currency
		in.Context["payout_method"] = r.PayoutMethod
		in.Context["new_beneficiary"] = r.NewBeneficiary
	}
	lists := make(map[string]bool, len(listNames)+1)
	for _, n := range listNames {
		lists[n] = false
	}
	if r.Action == "onboarding" {
		lists["disposable_email"] = r.DisposableEmail
	}
	v := r.Verification
	if v.ReasonCodes == nil {
		v.ReasonCodes = []string{}
	}
	in.Signals = engine.Signals{Verification: v, Lists: lists, Unavailable: []string{}}
	return in
}

// Config describes the history to generate.
type Config struct {
	Decisions int       // events to generate
	Days      int       // history length, ending at End
	End       time.Time // end of the history (exclusive)
	Seed      uint64
}

type country struct {
	code     string
	currency string
	prefix   string // first two octets of its home IPs
}

var homeCountries = []country{
	{"DE", "EUR", "84.150"}, {"FR", "EUR", "90.84"}, {"GB", "GBP", "86.128"}, {"ES", "EUR", "88.12"},
	{"IT", "EUR", "93.40"}, {"NL", "EUR", "145.53"}, {"PL", "PLN", "83.24"}, {"US", "USD", "73.92"},
}

var attackerCountries = []string{"RU", "NG", "BR", "VN", "RO", "ID", "UA", "PH"}

type device struct {
	id       string
	platform string
}

type user struct {
	id         string
	home       int // index in homeCountries
	created    time.Time
	devices    []device
	ip         string
	emailOK    bool
	phoneOK    bool
	verifiedAt time.Time // when verification reached final; zero for never
	final      string    // approved, rejected, pending_review
	score      float64
	provider   string
}

// Generator produces events in time order. It is deterministic for a Config.
type Generator struct {
	cfg      Config
	r        *rand.Rand
	users    []*user
	start    time.Time
	day      int // next day to generate
	perDay   float64
	pending  []Event // generated, not yet emitted, sorted by time from head on
	head     int
	emitted  int
	seq      uint64
	ids      uint64
	natPools [][]string // per home country: carrier NAT addresses shared by many users
}

// NewGenerator returns a generator for cfg. It returns an error for a non-positive
// Decisions or Days.
func NewGenerator(cfg Config) (*Generator, error) {
	if cfg.Decisions <= 0 || cfg.Days <= 0 {
		return nil, fmt.Errorf("seed: decisions and days must be positive (got %d, %d)", cfg.Decisions, cfg.Days)
	}
	if cfg.End.IsZero() {
		cfg.End = time.Now().UTC().Truncate(time.Hour)
	}
	g := &Generator{cfg: cfg, r: rand.New(rand.NewPCG(cfg.Seed, 0x5eed)), start: cfg.End.Add(-time.Duration(cfg.Days) * 24 * time.Hour)}
	// 1% more than asked, so that truncation at Decisions nearly always has enough; the
	// history then ends early (fraud campaigns add to the budget's use: 1.3 days of 90 for
	// the 1M history in docs/backtest.md), and Stats.First and Last say what was written.
	g.perDay = float64(cfg.Decisions) / float64(cfg.Days) * 1.01
	// Carrier NAT pools sized so that each address serves about three users a day.
	poolSize := max(4, int(g.perDay*0.06/float64(len(homeCountries))/3))
	for i := range homeCountries {
		pool := make([]string, poolSize)
		for j := range pool {
			pool[j] = fmt.Sprintf("%s.%d.%d", homeCountries[i].prefix, 200+j/250, 1+j%250)
		}
		g.natPools = append(g.natPools, pool)
	}
	// Each legitimate user makes about 25 requests over the history.
	n := max(50, cfg.Decisions/25)
	for range n {
		g.users = append(g.users, g.newUser(g.start.Add(-time.Duration(g.r.Float64()*3*365*24)*time.Hour)))
	}
	return g, nil
}

func (g *Generator) id(prefix string) string {
	g.ids++
	return prefix + strconv.FormatUint(g.ids*2654435761%(1<<40)+g.ids<<40, 36)
}

func (g *Generator) newDevice() device {
	p := []string{"ios", "android", "web"}[g.r.IntN(3)]
	return device{id: g.id("dev_"), platform: p}
}

func (g *Generator) newUser(created time.Time) *user {
	u := &user{id: g.id("usr_"), home: g.r.IntN(len(homeCountries)), created: created, emailOK: g.r.Float64() < 0.95, phoneOK: g.r.Float64() < 0.8}
	u.devices = []device{g.newDevice()}
	if g.r.Float64() < 0.5 {
		u.devices = append(u.devices, g.newDevice())
	}
	c := homeCountries[u.home]
	u.ip = fmt.Sprintf("%s.%d.%d", c.prefix, g.r.IntN(200), 1+g.r.IntN(254))
	u.provider = []string{"onfido", "persona", "sumsub", "veriff"}[g.r.IntN(4)]
	switch x := g.r.Float64(); {
	case x < 0.86:
		u.final, u.score = "approved", 0.85+0.15*g.r.Float64()
	case x < 0.89:
		u.final, u.score = "pending_review", 0.5+0.3*g.r.Float64()
	case x < 0.90:
		u.final, u.score = "rejected", 0.1*g.r.Float64()
	}
	if u.final != "" {
		u.verifiedAt = created.Add(time.Duration(1+g.r.IntN(72)) * time.Hour)
		// Older accounts were verified again within the last year or so: a few are stale.
		if again := g.start.Add(-time.Duration(g.r.IntN(300*24)) * time.Hour); u.verifiedAt.Before(again) {
			u.verifiedAt = again
		}
	}
	return u
}

// verification returns u's verification as seen at t.
func (u *user) verification(t time.Time) engine.Verification {
	if u.final == "" || t.Before(u.verifiedAt) {
		return engine.Verification{Status: "none", ReasonCodes: []string{}}
	}
	return engine.Verification{Status: u.final, Provider: u.provider, Score: math.Round(u.score*100) / 100,
		ReasonCodes: []string{}, AgeDays: math.Round(t.Sub(u.verifiedAt).Hours()/24*100) / 100}
}

func (g *Generator) base(u *user, t time.Time, action string, d device, ip, ctry string) Event {
	age := math.Floor(t.Sub(u.created).Hours() / 24)
	return Event{At: t, Request: Request{
		Action: action, UserID: u.id, AccountAgeDays: max(0, age), SubjectCountry: homeCountries[u.home].code,
		EmailVerified: u.emailOK, PhoneVerified: u.phoneOK, DeviceID: d.id, Platform: d.platform,
		IP: ip, Country: ctry, BotScore: math.Round(g.r.Float64()*g.r.Float64()*30) / 100,
		SessionAge: float64(5 + g.r.IntN(900)), Verification: u.verification(t),
	}, Scenario: ScenarioLegit}
}

func (g *Generator) add(ev Event) {
	ev.Draw = g.r.Float64()
	g.seq++
	ev.seq = g.seq
	g.pending = append(g.pending, ev)
}

// Next returns the next event in time order, and false when the history is complete.
func (g *Generator) Next() (Event, bool) {
	for {
		if g.emitted >= g.cfg.Decisions {
			return Event{}, false
		}
		if g.head < len(g.pending) {
			ev := g.pending[g.head]
			// Emit only what is before the end of the last generated day: later days
			// may still add earlier events.
			if g.day > g.cfg.Days || ev.At.Before(g.dayStart(g.day)) {
				g.head++
				if !ev.At.Before(g.cfg.End) {
					continue
				}
				g.emitted++
				return ev, true
			}
		}
		if g.day > g.cfg.Days {
			return Event{}, false
		}
		// Drop the emitted prefix, generate the next day, sort.
		g.pending = append(g.pending[:0], g.pending[g.head:]...)
		g.head = 0
		if g.day < g.cfg.Days {
			g.genDay(g.day)
		}
		g.day++
		slices.SortFunc(g.pending, func(a, b Event) int {
			if c := a.At.Compare(b.At); c != 0 {
				return c
			}
			return cmp.Compare(a.seq, b.seq)
		})
	}
}

func (g *Generator) dayStart(d int) time.Time { return g.start.Add(time.Duration(d) * 24 * time.Hour) }

// clock returns a time in day d, weighted towards daytime in Europe.
func (g *Generator) clock(d int) time.Time {
	h := g.r.NormFloat64()*4.5 + 14
	h = math.Mod(math.Mod(h, 24)+24, 24)
	return g.dayStart(d).Add(time.Duration(h * float64(time.Hour))).Add(time.Duration(g.r.IntN(3600)) * time.Second).Truncate(time.Millisecond)
}

func (g *Generator) genDay(d int) {
	budget := g.perDay
	// Shares of the day's events, roughly: legitimate 94%, of which 1.5% onboarding of
	// new users; account takeover 1.8%, device farms 1.6%, bonus abuse 0.8%, credential
	// stuffing 1.8%.
	type plan struct {
		share float64
		gen   func(d int) int
	}
	plans := []plan{
		{0.015, g.legitOnboarding}, {0.018, g.ato}, {0.016, g.farm}, {0.008, g.abuse}, {0.018, g.stuffing},
	}
	rest := budget
	for _, p := range plans {
		want := budget * p.share
		for n := 0.0; n < want; {
			n += float64(p.gen(d))
		}
		rest -= want
	}
	for n := 0.0; n < rest; {
		n += float64(g.legitSession(d))
	}
}

func (g *Generator) legitSession(d int) int {
	u := g.users[g.r.IntN(len(g.users))]
	t := g.clock(d)
	if t.Before(u.created) {
		return 0
	}
	dev := u.devices[0]
	switch x := g.r.Float64(); {
	case x < 0.02:
		dev = g.newDevice()
		u.devices = append(u.devices, dev)
	case len(u.devices) > 1 && x < 0.3:
		dev = u.devices[1+g.r.IntN(len(u.devices)-1)]
	}
	c := homeCountries[u.home]
	ip, ctry := u.ip, c.code
	switch x := g.r.Float64(); {
	case x < 0.03: // travelling
		ctry = homeCountries[g.r.IntN(len(homeCountries))].code
		ip = fmt.Sprintf("%d.%d.%d.%d", 100+g.r.IntN(100), g.r.IntN(256), g.r.IntN(256), 1+g.r.IntN(254))
	case x < 0.09: // mobile carrier NAT, shared by many users
		ip = g.natPools[u.home][g.r.IntN(len(g.natPools[u.home]))]
	}
	n := 0
	login := g.base(u, t, "login", dev, ip, ctry)
	login.AuthMethod = "password"
	if g.r.Float64() < 0.25 {
		login.AuthMethod = "passkey"
	}
	if g.r.Float64() < 0.04 {
		login.FailedAttempts = float64(1 + g.r.IntN(6))
	}
	if g.r.Float64() < 0.01 {
		login.BotScore = 0.6 + 0.35*g.r.Float64()
	}
	if dev.platform == "android" && g.r.Float64() < 0.01 {
		login.Rooted = true
	}
	g.add(login)
	n++
	if g.r.Float64() < 0.12 { // a second login later in the day
		again := login
		again.At = t.Add(time.Duration(30+g.r.IntN(300)) * time.Minute)
		again.FailedAttempts = 0
		g.add(again)
		n++
	}
	if g.r.Float64() < 0.35 {
		p := g.base(u, t.Add(time.Duration(30+g.r.IntN(900))*time.Second), "payout", dev, ip, ctry)
		p.Currency = c.currency
		p.Amount = math.Round(math.Exp(g.r.NormFloat64()*0.9+4.6)*100) / 100 // median ~100
		if p.AccountAgeDays > 180 && g.r.Float64() < 0.05 {
			p.Amount = math.Round(2000 + 9000*g.r.Float64())
		}
		p.PayoutMethod = "bank"
		switch x := g.r.Float64(); {
		case x < 0.08:
			p.PayoutMethod = "crypto"
		case x < 0.25:
			p.PayoutMethod = "card"
		}
		p.NewBeneficiary = g.r.Float64() < 0.08
		g.add(p)
		n++
	}
	return n
}

func (g *Generator) legitOnboarding(d int) int {
	t := g.clock(d)
	u := g.newUser(t)
	g.users = append(g.users, u)
	ev := g.base(u, t, "onboarding", u.devices[0], u.ip, homeCountries[u.home].code)
	g.add(ev)
	n := 1
	if u.final == "approved" && g.r.Float64() < 0.6 { // comes back once verified
		again := g.base(u, u.verifiedAt.Add(time.Duration(g.r.IntN(600))*time.Second), "onboarding", u.devices[0], u.ip, homeCountries[u.home].code)
		g.add(again)
		n++
	}
	return n
}

func (g *Generator) attackerIP() (string, string) {
	ctry := attackerCountries[g.r.IntN(len(attackerCountries))]
	return fmt.Sprintf("%d.%d.%d.%d", 5+g.r.IntN(40), g.r.IntN(256), g.r.IntN(256), 1+g.r.IntN(254)), ctry
}

func fraud(ev Event, scenario string) Event {
	ev.Scenario, ev.Fraud = scenario, true
	return ev
}

// ato takes over a verified user's account: a burst of password logins from a new
// device abroad, then a payout to a new beneficiary shortly after, or days later once
// the device is no longer new (which the shipped payout policy misses).
func (g *Generator) ato(d int) int {
	u := g.users[g.r.IntN(len(g.users))]
	t := g.clock(d)
	if u.final != "approved" || t.Before(u.verifiedAt) {
		return 0
	}
	dev := g.newDevice()
	dev.platform = "android"
	emu := g.r.Float64() < 0.2
	ip, ctry := g.attackerIP()
	if g.r.Float64() < 0.3 { // residential proxy in the victim's country
		ctry = homeCountries[u.home].code
	}
	n := 0
	attempts := 2 + g.r.IntN(5)
	for i := range attempts {
		ev := fraud(g.base(u, t, "login", dev, ip, ctry), ScenarioATO)
		ev.AuthMethod = "password"
		ev.FailedAttempts = float64(max(0, attempts-1-i) * (1 + g.r.IntN(3)))
		ev.Emulator = emu
		ev.Paste = true
		ev.SessionAge = float64(1 + g.r.IntN(40))
		ev.BotScore = math.Round((0.2+0.6*g.r.Float64())*100) / 100
		g.add(ev)
		n++
		t = t.Add(time.Duration(20+g.r.IntN(240)) * time.Second)
	}
	if g.r.Float64() < 0.75 {
		delay := time.Duration(2+g.r.IntN(60)) * time.Minute
		if g.r.Float64() < 0.3 { // patient: wait until the device is "known" for a day
			delay = time.Duration(26+g.r.IntN(72)) * time.Hour
			login := fraud(g.base(u, t.Add(delay-time.Duration(g.r.IntN(600))*time.Second), "login", dev, ip, ctry), ScenarioATO)
			login.AuthMethod = "password"
			login.Emulator = emu
			g.add(login)
			n++
		}
		p := fraud(g.base(u, t.Add(delay), "payout", dev, ip, ctry), ScenarioATO)
		p.Emulator = emu
		p.Currency = homeCountries[u.home].currency
		p.Amount = math.Round(150 + 2400*g.r.Float64())
		p.PayoutMethod = []string{"bank", "crypto", "crypto", "card"}[g.r.IntN(4)]
		p.NewBeneficiary = true
		p.BotScore = math.Round((0.1+0.6*g.r.Float64())*100) / 100
		g.add(p)
		n++
	}
	return n
}

// farm onboards many new accounts from one device (often an emulator) and one /24, and
// cashes out sign-up bonuses from some of them.
func (g *Generator) farm(d int) int {
	t := g.clock(d)
	dev := g.newDevice()
	dev.platform = "android"
	emu := g.r.Float64() < 0.5
	net := fmt.Sprintf("%d.%d.%d", 45+g.r.IntN(60), g.r.IntN(256), g.r.IntN(256))
	ctry := homeCountries[g.r.IntN(len(homeCountries))].code
	accounts := 4 + g.r.IntN(30)
	n := 0
	for range accounts {
		t = t.Add(time.Duration(1+g.r.IntN(15)) * time.Minute)
		u := &user{id: g.id("usr_"), home: g.r.IntN(len(homeCountries)), created: t, devices: []device{dev}, emailOK: g.r.Float64() < 0.6}
		ip := net + "." + strconv.Itoa(1+g.r.IntN(254))
		ev := fraud(g.base(u, t, "onboarding", dev, ip, ctry), ScenarioFarm)
		ev.Emulator = emu
		ev.DisposableEmail = g.r.Float64() < 0.4
		ev.BotScore = math.Round((0.3+0.6*g.r.Float64())*100) / 100
		g.add(ev)
		n++
		if g.r.Float64() < 0.5 {
			p := fraud(g.base(u, t.Add(time.Duration(1+g.r.IntN(48))*time.Hour), "payout", dev, ip, ctry), ScenarioFarm)
			p.Emulator = emu
			p.Currency = "EUR"
			p.Amount = float64(25 * (1 + g.r.IntN(12)))
			p.PayoutMethod = []string{"crypto", "card", "ewallet"}[g.r.IntN(3)]
			p.NewBeneficiary = true
			g.add(p)
			n++
		}
	}
	return n
}

// abuse is one person opening a few accounts, each on a fresh device but from the same
// home IP, to cash out the sign-up bonus with small payouts.
func (g *Generator) abuse(d int) int {
	t := g.clock(d)
	owner := g.newUser(t)
	n := 0
	for range 2 + g.r.IntN(6) {
		t = t.Add(time.Duration(5+g.r.IntN(120)) * time.Minute)
		u := &user{id: g.id("usr_"), home: owner.home, created: t, devices: []device{g.newDevice()}, emailOK: true}
		ev := fraud(g.base(u, t, "onboarding", u.devices[0], owner.ip, homeCountries[owner.home].code), ScenarioAbuse)
		ev.DisposableEmail = g.r.Float64() < 0.7
		g.add(ev)
		n++
		p := fraud(g.base(u, t.Add(time.Duration(10+g.r.IntN(600))*time.Minute), "payout", u.devices[0], owner.ip, homeCountries[owner.home].code), ScenarioAbuse)
		p.Currency = homeCountries[owner.home].currency
		p.Amount = float64(50 + 10*g.r.IntN(16))
		p.PayoutMethod = "card"
		p.NewBeneficiary = g.r.Float64() < 0.5
		g.add(p)
		n++
	}
	return n
}

// stuffing tries leaked credentials of many users from one IP within minutes.
func (g *Generator) stuffing(d int) int {
	t := g.clock(d)
	ip, ctry := g.attackerIP()
	tries := 15 + g.r.IntN(120)
	devs := []device{g.newDevice(), g.newDevice(), g.newDevice()}
	bot := 0.4 + 0.55*g.r.Float64()
	spread := time.Duration(2+g.r.IntN(20)) * time.Minute
	for range tries {
		u := g.users[g.r.IntN(len(g.users))]
		at := t.Add(time.Duration(g.r.Int64N(int64(spread)))).Truncate(time.Millisecond)
		ev := fraud(g.base(u, at, "login", devs[g.r.IntN(len(devs))], ip, ctry), ScenarioStuffing)
		ev.AuthMethod = "password"
		ev.Paste = true
		ev.SessionAge = float64(g.r.IntN(3))
		ev.BotScore = math.Round(min(0.99, bot+0.1*g.r.NormFloat64())*100) / 100
		g.add(ev)
	}
	return tries
}
