package verdict.lib_test

import data.verdict.lib

# Reason builders.

test_reason_shape if {
	lib.reason("DENY_LIST_USER", "block", 100, "User is on the deny list") == {
		"code": "DENY_LIST_USER", "outcome": "block", "score": 100, "message": "User is on the deny list",
	}
}

test_reason_at_shape if {
	lib.reason_at("USER_VELOCITY_1H", "review", 30, "m", "velocity.user.count_1h", 12, 10) == {
		"code": "USER_VELOCITY_1H", "outcome": "review", "score": 30, "message": "m",
		"signal": "velocity.user.count_1h", "value": 12, "threshold": 10,
	}
}

test_reason_at_omits_null_fields_but_keeps_false_and_zero if {
	lib.reason_at("X", "review", 1, "m", "device.known", false, null) == {
		"code": "X", "outcome": "review", "score": 1, "message": "m",
		"signal": "device.known", "value": false,
	}
	lib.reason_at("X", "review", 1, "m", null, 0, null) == {
		"code": "X", "outcome": "review", "score": 1, "message": "m", "value": 0,
	}
	lib.step_up_at("X", 1, "m", "otp", null, null, 3) == {
		"code": "X", "outcome": "step_up", "score": 1, "message": "m", "step_up": "otp", "threshold": 3,
	}
}

# Reasons built from request values omit a null value too (the call is evaluated, not
# folded when the policy is loaded).
test_reason_at_omits_a_null_request_value if {
	r := lib.reason_at("X", "review", 1, "m", "context.amount", input.context.amount, 10) with input as {"context": {"amount": null}}
	r == {"code": "X", "outcome": "review", "score": 1, "message": "m", "signal": "context.amount", "threshold": 10}
}

test_step_up_shape if {
	lib.step_up("NEW_DEVICE", 20, "m", "otp") == {
		"code": "NEW_DEVICE", "outcome": "step_up", "score": 20, "message": "m", "step_up": "otp",
	}
}

test_step_up_at_shape if {
	lib.step_up_at("DOCUMENT_EXPIRED", 20, "m", "document", "verification.age_days", 400, 365) == {
		"code": "DOCUMENT_EXPIRED", "outcome": "step_up", "score": 20, "message": "m",
		"step_up": "document", "signal": "verification.age_days", "value": 400, "threshold": 365,
	}
}

# decide: outcome.

test_decide_nothing_fired_approves if {
	lib.decide(set()) == {"outcome": "approve", "reasons": [], "score": 0}
	lib.decide([]) == {"outcome": "approve", "reasons": [], "score": 0}
}

test_decide_most_severe_outcome_wins if {
	every c in [
		{"outcomes": ["approve"], "want": "approve"},
		{"outcomes": ["approve", "step_up"], "want": "step_up"},
		{"outcomes": ["step_up", "review"], "want": "review"},
		{"outcomes": ["review", "step_up", "block", "approve"], "want": "block"},
		{"outcomes": ["step_up", "step_up"], "want": "step_up"},
	] {
		rs := {lib.reason(sprintf("R%d", [i]), o, 1, "m") | some i, o in c.outcomes}
		lib.decide(rs).outcome == c.want
	}
}

# decide: reasons.

test_decide_keeps_every_reason_ordered_by_severity_then_code if {
	rs := {
		lib.reason("B_STEP", "step_up", 1, "m"),
		lib.reason("Z_BLOCK", "block", 1, "m"),
		lib.reason("A_REVIEW", "review", 1, "m"),
		lib.reason("A_BLOCK", "block", 1, "m"),
		lib.reason("INFO", "approve", 0, "m"),
		lib.reason("A_STEP", "step_up", 1, "m"),
	}
	[r.code | some r in lib.decide(rs).reasons] == ["A_BLOCK", "Z_BLOCK", "A_REVIEW", "A_STEP", "B_STEP", "INFO"]
}

test_decide_reasons_are_unchanged if {
	r := lib.reason_at("USER_VELOCITY_1H", "review", 30, "m", "velocity.user.count_1h", 12, 10)
	lib.decide({r}).reasons == [r]
}

test_decide_unknown_outcome_is_kept_last_and_does_not_raise_outcome if {
	d := lib.decide({lib.reason("A", "step_up", 1, "m"), lib.reason("B", "deny", 1, "m")})
	d.outcome == "step_up"
	[r.code | some r in d.reasons] == ["A", "B"]
}

# decide: score.

test_decide_score_is_the_sum if {
	lib.decide({lib.reason("A", "review", 30, "m"), lib.reason("B", "step_up", 15.5, "m")}).score == 45.5
}

test_decide_score_counts_equal_scores_of_distinct_reasons if {
	lib.decide({lib.reason("A", "review", 30, "m"), lib.reason("B", "review", 30, "m")}).score == 60
}

test_decide_score_is_clamped_to_0_100 if {
	lib.decide({lib.reason("A", "block", 100, "m"), lib.reason("B", "review", 40, "m")}).score == 100
	lib.decide({lib.reason("A", "approve", -20, "m")}).score == 0
	lib.decide({lib.reason("A", "block", 120, "m")}).score == 100
	lib.decide({lib.step_up("A", 150, "m", "otp")}).score == 100
}

# decide: step_up method.

test_decide_step_up_strongest_method_wins if {
	lib.decide({lib.step_up("A", 1, "m", "otp")}).step_up == "otp"
	lib.decide({lib.step_up("A", 1, "m", "otp"), lib.step_up("B", 1, "m", "webauthn")}).step_up == "webauthn"
	lib.decide({
		lib.step_up("A", 1, "m", "document"),
		lib.step_up("B", 1, "m", "webauthn"),
		lib.step_up("C", 1, "m", "otp"),
	}).step_up == "document"
}

test_decide_step_up_absent_unless_outcome_is_step_up if {
	d := lib.decide({lib.step_up("A", 1, "m", "document"), lib.reason("B", "review", 1, "m")})
	d.outcome == "review"
	not d.step_up
	not lib.decide({lib.reason("A", "approve", 0, "m")}).step_up
}

test_decide_step_up_defaults_to_otp if {
	lib.decide({lib.reason("A", "step_up", 1, "m")}).step_up == "otp"
}

test_strongest_method_follows_step_up_strength if {
	pairs := [[a, b] | some a, sa in lib.step_up_strength; some b, sb in lib.step_up_strength; sa >= sb]
	count(pairs) == 6
	every p in pairs {
		lib.strongest_method({p[0], p[1]}) == p[0]
		lib.decide({lib.step_up("A", 1, "m", p[0]), lib.step_up("B", 1, "m", p[1])}).step_up == p[0]
	}
}

test_decide_step_up_unknown_method_ranks_lowest if {
	lib.decide({lib.step_up("A", 1, "m", "sms")}).step_up == "sms"
	lib.decide({lib.step_up("A", 1, "m", "sms"), lib.step_up("B", 1, "m", "otp")}).step_up == "otp"
}

test_decide_is_deterministic_for_arrays if {
	a := lib.reason("A", "review", 1, "m")
	b := lib.reason("B", "block", 1, "m")
	lib.decide([a, b]) == lib.decide([b, a])
	lib.decide([a, b]) == lib.decide({a, b})
}

# decide answers one reason without the general path; both must agree.

test_decide_single_reason_matches_the_general_path if {
	every r in [
		lib.reason("A", "approve", 0, "m"),
		lib.reason("A", "review", 30, "m"),
		lib.reason_at("A", "block", 100, "m", "lists.deny_user", true, null),
		lib.step_up("A", 15, "m", "otp"),
		lib.step_up_at("A", 20, "m", "document", "verification.status", "none", null),
		lib.step_up("A", 15, "m", 7),
		lib.reason("A", "step_up", 15, "m"),
		lib.reason("A", "deny", 15, "m"),
		lib.reason("A", "review", 130, "m"),
		lib.reason("A", "review", -1, "m"),
	] {
		lib.decide({r}) == lib.decide_all({r})
		lib.decide([r]) == lib.decide_all([r])
	}
}

test_decide_orders_by_code_whatever_the_other_fields if {
	rs := {
		lib.reason_at("B_REVIEW", "review", 1, "m", "a", 1, 2),
		lib.step_up_at("A_STEP", 1, "m", "otp", "z", null, null),
		lib.reason("A_REVIEW", "review", 1, "m"),
		lib.step_up("C_STEP", 1, "m", "document"),
	}
	d := lib.decide(rs)
	[r.code | some r in d.reasons] == ["A_REVIEW", "B_REVIEW", "A_STEP", "C_STEP"]
	d.outcome == "review"
	not d.step_up
}

# Tables.

test_outcomes_match_severity if {
	every o, s in lib.severity {
		lib.outcomes[s] == o
	}
	count(lib.outcomes) == count(lib.severity)
}
