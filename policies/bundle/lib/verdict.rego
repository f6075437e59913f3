# METADATA
# title: Verdict policy library
# description: |
#   Shared helpers for every Verdict policy. A policy writes one rule per reason code into a
#   `reasons` set with reason, reason_at, step_up or step_up_at, then answers with
#   `decision := lib.decide(reasons)`. This package is not an action: it has no decision.
#
#   Conventions for callers:
#   - code is a stable UPPER_SNAKE reason code, documented in docs/reason-codes.md.
#   - outcome is one of approve, step_up, review, block.
#   - score is the reason's contribution to the decision's 0..100 risk score.
#   - signal names what was looked at ("velocity.user.count_1h"), value what was seen and
#     threshold the limit or expected value it was compared to. Pass null for any of them
#     that does not apply: null fields are left out of the reason.
package verdict.lib

# severity orders the outcomes; the decision's outcome is the most severe fired one.
severity := {"approve": 0, "step_up": 1, "review": 2, "block": 3}

# outcomes lists the outcomes by severity: outcomes[severity[o]] == o.
outcomes := ["approve", "step_up", "review", "block"]

# step_up_strength orders the step-up methods; when several step-up reasons fire, the
# strongest method is the one asked for.
step_up_strength := {"otp": 1, "webauthn": 2, "document": 3}

# reason returns a reason without a signal.
#   reasons contains lib.reason("DENY_LIST_USER", "block", 100, "User is on the deny list") if ...
reason(code, outcome, score, message) := {
	"code": code,
	"outcome": outcome,
	"score": score,
	"message": message,
}

# reason_at returns a reason that names the signal it looked at, the value it saw and the
# threshold it compared to (null fields are omitted).
#   reasons contains lib.reason_at("USER_VELOCITY_1H", "review", 30, "Too many payouts in the last hour",
#       "velocity.user.count_1h", n, thresholds.max_user_1h) if { n := ...; n > thresholds.max_user_1h }
reason_at(code, outcome, score, message, signal, value, threshold) := object.union(
	reason(code, outcome, score, message),
	non_null({"signal": signal, "value": value, "threshold": threshold}),
)

# step_up returns a step_up reason asking for the given method ("otp", "webauthn" or "document").
#   reasons contains lib.step_up("NEW_BENEFICIARY", 15, "Payout to a new beneficiary", "otp") if ...
step_up(code, score, message, method) := object.union(
	reason(code, "step_up", score, message),
	{"step_up": method},
)

# step_up_at is step_up with a signal, the value seen and the threshold (null fields omitted).
step_up_at(code, score, message, method, signal, value, threshold) := object.union(
	reason_at(code, "step_up", score, message, signal, value, threshold),
	{"step_up": method},
)

# decide combines the fired reasons (a set or an array) into the decision the engine reads:
#   outcome  the most severe fired outcome; "approve" when none fired.
#   reasons  every fired reason, most severe first, then by code (deterministic).
#   score    the sum of the reasons' scores, clamped to 0..100.
#   step_up  only when the outcome is step_up: the strongest method asked for by a fired
#            step_up reason (document > webauthn > otp); "otp" if none names one.
decide(rs) := object.union(
	{
		"outcome": outcome_of(rs),
		"reasons": ordered(rs),
		"score": score_of(rs),
	},
	step_up_of(rs),
)

# outcome_of returns the most severe outcome among rs, or "approve" for none. Reasons
# with an unknown outcome do not raise it; they are kept in the decision so that the
# engine rejects it loudly instead of silently approving.
outcome_of(rs) := outcomes[max({0} | {severity[r.outcome] | some r in rs})]

# ordered returns rs as an array, most severe first, ties broken by code.
ordered(rs) := [entry[2] | some entry in sort([[0 - object.get(severity, r.outcome, -1), r.code, r] | some r in rs])]

# score_of returns the sum of the reasons' scores clamped to 0..100.
score_of(rs) := min({100, max({0, sum([r.score | some r in rs])})})

# step_up_of returns {"step_up": method} when the outcome of rs is step_up, {} otherwise.
step_up_of(rs) := {"step_up": strongest_step_up(rs)} if {
	outcome_of(rs) == "step_up"
} else := {}

# strongest_step_up returns the strongest method named by a step_up reason in rs
# (unknown methods rank lowest), or "otp" when none names one.
strongest_step_up(rs) := ranked[count(ranked) - 1][1] if {
	ranked := sort({[object.get(step_up_strength, r.step_up, 0), r.step_up] |
		some r in rs
		r.outcome == "step_up"
		is_string(r.step_up)
	})
	count(ranked) > 0
} else := "otp"

# non_null returns obj without its null-valued keys.
non_null(obj) := {k: v | some k, v in obj; v != null}
