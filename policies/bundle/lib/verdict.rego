# METADATA
# title: Verdict policy library
# description: |
#   Shared helpers for every Verdict policy. A policy writes one rule per reason code into a
#   `reasons` set with reason, reason_at, step_up or step_up_at, then answers with
#   `decision := lib.decide(reasons)`. This package is not an action: it has no decision.
#
#   Conventions for callers:
#   - code is a stable UPPER_SNAKE reason code, documented in the README (Reason codes).
#   - outcome is one of approve, step_up, review, block.
#   - score is the reason's contribution to the decision's 0..100 risk score.
#   - signal names what was looked at ("velocity.user.count_1h"), value what was seen and
#     threshold the limit or expected value it was compared to. Pass null for any of them
#     that does not apply: null fields are left out of the reason.
#
#   The helpers run on every decision, so they are written to be cheap to evaluate: no
#   comprehension per reason, functions the engine can fold when it loads a policy (see
#   docs/perf-notes.md), and a decide that answers the common cases first.
package verdict.lib

# severity orders the outcomes; the decision's outcome is the most severe fired one.
severity := {"approve": 0, "step_up": 1, "review": 2, "block": 3}

# outcomes lists the outcomes by severity: outcomes[severity[o]] == o.
outcomes := ["approve", "step_up", "review", "block"]

# step_up_strength orders the step-up methods; when several step-up reasons fire, the
# strongest method is the one asked for (strongest_method follows this order).
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
	at(signal, value, threshold),
)

# step_up returns a step_up reason asking for the given method ("otp", "webauthn" or "document").
#   reasons contains lib.step_up("NEW_BENEFICIARY", 15, "Payout to a new beneficiary", "otp") if ...
step_up(code, score, message, method) := {
	"code": code,
	"outcome": "step_up",
	"score": score,
	"message": message,
	"step_up": method,
}

# step_up_at is step_up with a signal, the value seen and the threshold (null fields omitted).
step_up_at(code, score, message, method, signal, value, threshold) := object.union(
	step_up(code, score, message, method),
	at(signal, value, threshold),
)

# at returns the signal, value and threshold fields of a reason, without the null ones.
# One body per combination rather than a comprehension: when a policy is loaded, a call on
# constants folds into a constant, and a call on a request value into a test of that value.
at(s, v, t) := {"signal": s, "value": v, "threshold": t} if { s != null; v != null; t != null }

at(s, v, t) := {"signal": s, "value": v} if { s != null; v != null; t == null }

at(s, v, t) := {"signal": s, "threshold": t} if { s != null; v == null; t != null }

at(s, v, t) := {"signal": s} if { s != null; v == null; t == null }

at(s, v, t) := {"value": v, "threshold": t} if { s == null; v != null; t != null }

at(s, v, t) := {"value": v} if { s == null; v != null; t == null }

at(s, v, t) := {"threshold": t} if { s == null; v == null; t != null }

at(s, v, t) := {} if { s == null; v == null; t == null }

# decide combines the fired reasons (a set or an array) into the decision the engine reads:
#   outcome  the most severe fired outcome; "approve" when none fired.
#   reasons  every fired reason, most severe first, then by code (deterministic).
#   score    the sum of the reasons' scores, clamped to 0..100.
#   step_up  only when the outcome is step_up: the strongest method asked for by a fired
#            step_up reason (document > webauthn > otp); "otp" if none names one.
# Reasons with an unknown outcome do not raise the outcome; they are kept, last, so that
# the engine rejects the decision loudly instead of silently approving.
#
# decide runs on every decision. Most fire no reason or one, and need neither ordering
# nor summing: those are answered first (a single reason's score is its own when within
# 0..100), and only several reasons take the general path.
decide(rs) := {"outcome": "approve", "reasons": [], "score": 0} if {
	count(rs) == 0
} else := {"outcome": "step_up", "reasons": [r], "score": r.score, "step_up": r.step_up} if {
	count(rs) == 1
	some r in rs
	r.outcome == "step_up"
	is_string(r.step_up)
	r.score >= 0
	r.score <= 100
} else := {"outcome": r.outcome, "reasons": [r], "score": r.score} if {
	count(rs) == 1
	some r in rs
	r.outcome in {"approve", "review", "block"}
	r.score >= 0
	r.score <= 100
} else := decide_all(rs)

# decide_all is decide for one reason or more. The reasons are sorted by code (sort
# orders objects key by key, and "code" is the first key of a reason built with the
# helpers), then taken outcome by outcome, most severe first, reasons with an unknown
# outcome last: the first one's outcome is the decision's, or approve when it is unknown.
decide_all(rs) := decision_of(object.get(known_outcomes, ordered[0].outcome, "approve"), ordered, total) if {
	sorted := sort(rs)
	ordered := array.concat(
		[r | some o in ["block", "review", "step_up", "approve"]; some r in sorted; r.outcome == o],
		[r | some r in sorted; not severity[r.outcome]],
	)
	total := sum([r.score | some r in rs])
}

# known_outcomes maps every outcome to itself.
known_outcomes := {o: o | some o in outcomes}

# decision_of is the decision with the given outcome, ordered reasons and total score,
# clamped to 0..100 (the middle of 0, the total and 100).
decision_of(outcome, ordered, total) := {
	"outcome": outcome,
	"reasons": ordered,
	"score": sort([0, total, 100])[1],
	"step_up": strongest_step_up(ordered),
} if {
	outcome == "step_up"
} else := {
	"outcome": outcome,
	"reasons": ordered,
	"score": sort([0, total, 100])[1],
}

# strongest_step_up returns the strongest method named by a step_up reason in rs
# (unknown methods rank lowest, the greatest name first), or "otp" when none names one.
strongest_step_up(rs) := strongest_method({r.step_up | some r in rs; r.outcome == "step_up"; is_string(r.step_up)})

strongest_method(methods) := "document" if {
	"document" in methods
} else := "webauthn" if {
	"webauthn" in methods
} else := "otp" if {
	"otp" in methods
} else := max(methods) if {
	count(methods) > 0
} else := "otp"
