package engine

// Reason is one fired rule: a stable UPPER_SNAKE code with a human message, and
// optionally the signal it looked at, the value it saw and the threshold it compared to.
type Reason struct {
	Code      string  `json:"code"`
	Outcome   Outcome `json:"outcome"`
	Message   string  `json:"message"`
	Signal    string  `json:"signal,omitempty"`
	Value     any     `json:"value,omitempty"`
	Threshold any     `json:"threshold,omitempty"`
	Score     float64 `json:"-"`
}

// PolicyRef names the policy version that made a decision.
type PolicyRef struct {
	Action   string `json:"action"`
	Version  string `json:"version"`
	Hash     string `json:"hash"`
	Language string `json:"language"`
}

// Decision is the result of evaluating a policy on an Input.
type Decision struct {
	Outcome Outcome  `json:"outcome"`
	Score   float64  `json:"score"`
	Reasons []Reason `json:"reasons"`
	// StepUp names the challenge to run when Outcome is StepUp ("otp", "webauthn",
	// "document"); empty otherwise.
	StepUp string    `json:"step_up,omitempty"`
	Policy PolicyRef `json:"policy"`
}
