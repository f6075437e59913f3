package engine

import "encoding/json"

// Input is the policy input document. Its shape is fixed and documented in the README:
// action, subject, device, context and behavior are passed through as the caller posted
// them; signals is filled by the signals package. A stored decision keeps the exact Input
// it was evaluated on, so `opa eval` on it reproduces the outcome.
type Input struct {
	Action   string         `json:"action"`
	Subject  map[string]any `json:"subject"`
	Device   map[string]any `json:"device"`
	Context  map[string]any `json:"context"`
	Behavior map[string]any `json:"behavior"`
	Signals  Signals        `json:"signals"`
}

// Signals are the facts gathered for a decision.
type Signals struct {
	Verification Verification     `json:"verification"`
	Velocity     Velocity         `json:"velocity"`
	Device       DeviceReputation `json:"device"`
	// Lists maps every known list name (deny_user, allow_ip, ...) to whether the
	// request's user, device, IP or country is on it.
	Lists map[string]bool `json:"lists"`
	// Unavailable names the sources that failed or timed out ("velocity", "lists",
	// "verification", "device"). The policy sees it; the fail mode applies when the
	// policy reads one of them (Degraded).
	Unavailable []string `json:"unavailable"`
	// NotGathered names the sources Verdict did not ask for this decision because
	// neither the action's policy nor its shadow versions read them (Policy.Reads). Their
	// keys are left out of the document, in JSON as in what Rego and CEL policies see, so
	// that a source not gathered never reads as zero counts or "none"; absent (nil) when
	// every source was gathered. A policy that reads one of them (a backtest candidate,
	// say) decides degraded, as with an unavailable source.
	NotGathered []string `json:"not_gathered,omitempty"`
}

// signalsJSON is the encoding/json form of Signals: the sources not gathered are left out.
type signalsJSON struct {
	Verification *Verification     `json:"verification,omitempty"`
	Velocity     *Velocity         `json:"velocity,omitempty"`
	Device       *DeviceReputation `json:"device,omitempty"`
	Lists        *map[string]bool  `json:"lists,omitempty"`
	Unavailable  []string          `json:"unavailable"`
	NotGathered  []string          `json:"not_gathered,omitempty"`
}

// MarshalJSON encodes s as the policy input document has it: without the keys of the
// sources it lists as not gathered.
func (s Signals) MarshalJSON() ([]byte, error) {
	ng := sourcesOf(s.NotGathered)
	out := signalsJSON{Unavailable: s.Unavailable, NotGathered: s.NotGathered}
	if !ng.Has(SourceVerification) {
		out.Verification = &s.Verification
	}
	if !ng.Has(SourceVelocity) {
		out.Velocity = &s.Velocity
	}
	if !ng.Has(SourceDevice) {
		out.Device = &s.Device
	}
	if !ng.Has(SourceLists) {
		out.Lists = &s.Lists
	}
	return json.Marshal(out)
}

// Verification is the subject's latest identity verification.
type Verification struct {
	// Status is the canonical session status, or "none" when the subject has none.
	Status      string   `json:"status"`
	Provider    string   `json:"provider"`
	Score       float64  `json:"score"`
	ReasonCodes []string `json:"reason_codes"`
	// AgeDays is the number of days since the verification last changed (0 for none).
	AgeDays float64 `json:"age_days"`
}

// Velocity holds sliding-window counts for the request's user, device and IP. Counts are
// per action and include the current request.
type Velocity struct {
	User   Window `json:"user"`
	Device Window `json:"device"`
	IP     Window `json:"ip"`
}

// Window is a set of sliding-window counters for one key.
type Window struct {
	Count1m  int64 `json:"count_1m"`
	Count1h  int64 `json:"count_1h"`
	Count24h int64 `json:"count_24h"`
	// DistinctUsers24h is the number of distinct users seen with this device or IP in
	// the last 24 h, across actions (0 for the user window).
	DistinctUsers24h int64 `json:"distinct_users_24h"`
	// DistinctDevices24h is the number of distinct devices the user used in the last
	// 24 h, across actions (0 for device and IP windows).
	DistinctDevices24h int64 `json:"distinct_devices_24h"`
}

// DeviceReputation describes what Verdict knows about the request's device.
type DeviceReputation struct {
	// Known is false the first time a device id is seen.
	Known bool `json:"known"`
	// AgeHours is the time since the device was first seen.
	AgeHours float64 `json:"age_hours"`
	// UsersSeen is the number of distinct users seen on the device in the last 30 days.
	UsersSeen int64 `json:"users_seen"`
	// Flagged is true when the device is on the deny_device or watch_device list.
	Flagged bool `json:"flagged"`
}
