package verdict.payout_test

import data.verdict.payout

# base is an ordinary payout by an established, verified customer on a known device to a
# known bank beneficiary: no rule fires on it.
base := {
	"action": "payout",
	"subject": {"id": "u_42", "account_age_days": 400, "country": "GB", "email_verified": true, "phone_verified": true},
	"device": {"id": "d_42", "platform": "web", "emulator": false, "rooted": false},
	"context": {
		"ip": "192.0.2.10", "country": "GB", "amount": 1200, "currency": "GBP",
		"payout_method": "bank", "new_beneficiary": false,
	},
	"behavior": {"bot_score": 0.02, "session_age_seconds": 600, "paste_in_credentials": false},
	"signals": {
		"verification": {"status": "approved", "provider": "onfido", "score": 0.99, "reason_codes": [], "age_days": 90},
		"velocity": {
			"user": {"count_1m": 1, "count_1h": 1, "count_24h": 2, "distinct_users_24h": 0, "distinct_devices_24h": 1},
			"device": {"count_1m": 1, "count_1h": 1, "count_24h": 2, "distinct_users_24h": 1, "distinct_devices_24h": 0},
			"ip": {"count_1m": 1, "count_1h": 1, "count_24h": 2, "distinct_users_24h": 1, "distinct_devices_24h": 0},
		},
		"device": {"known": true, "age_hours": 5000, "users_seen": 1, "flagged": false},
		"lists": {"deny_user": false, "deny_device": false, "deny_ip": false, "deny_country": false},
		"unavailable": [],
	},
}

decide(patch) := d if {
	inp := object.union(base, patch)
	d := payout.decision with input as inp
}

codes(d) := {r.code | some r in d.reasons}

reason(d, code) := r if {
	some r in d.reasons
	r.code == code
}

test_ordinary_payout_approves if {
	decide({}) == {"outcome": "approve", "reasons": [], "score": 0}
}

# An empty request is not approved: no amount, no verification.
test_empty_input_reviews if {
	d := payout.decision with input as {}
	d.outcome == "review"
	codes(d) == {"AMOUNT_INVALID", "VERIFICATION_REQUIRED"}
}

# Deny lists.

test_deny_lists_block if {
	every list, code in {
		"deny_user": "DENY_LIST_USER", "deny_device": "DENY_LIST_DEVICE",
		"deny_ip": "DENY_LIST_IP", "deny_country": "DENY_LIST_COUNTRY",
	} {
		d := decide({"signals": {"lists": {list: true}}})
		d.outcome == "block"
		codes(d) == {code}
	}
}

test_null_lists_do_not_fire if {
	decide({"signals": {"lists": null}}).outcome == "approve"
}

# Amount limits by account age.

test_amount_limit_tiers_fire_above_the_tier_limit if {
	every c in [
		{"age": 400, "amount": 10001, "limit": 10000},
		{"age": 180, "amount": 10001, "limit": 10000},
		{"age": 179, "amount": 2501, "limit": 2500},
		{"age": 30, "amount": 2501, "limit": 2500},
		{"age": 29, "amount": 501, "limit": 500},
		{"age": 0, "amount": 501, "limit": 500},
	] {
		d := decide({"subject": {"account_age_days": c.age}, "context": {"amount": c.amount}})
		codes(d) == {"AMOUNT_OVER_LIMIT"}
		reason(d, "AMOUNT_OVER_LIMIT").threshold == c.limit
	}
}

test_amount_limit_tiers_do_not_fire_at_the_tier_limit if {
	every c in [
		{"age": 400, "amount": 10000},
		{"age": 180, "amount": 10000},
		{"age": 179, "amount": 2500},
		{"age": 30, "amount": 2500},
		{"age": 29, "amount": 500},
	] {
		d := decide({"subject": {"account_age_days": c.age}, "context": {"amount": c.amount}})
		d.outcome == "approve"
	}
}

test_amount_over_limit_reviews if {
	d := decide({"context": {"amount": 12000}})
	d.outcome == "review"
	codes(d) == {"AMOUNT_OVER_LIMIT"}
	r := reason(d, "AMOUNT_OVER_LIMIT")
	r.value == 12000
	r.threshold == 10000
}

test_unknown_account_age_gets_new_account_limit if {
	inp := json.remove(base, ["subject/account_age_days"])
	d := payout.decision with input as inp
	[r.code | some r in d.reasons] == ["AMOUNT_OVER_LIMIT"]
	reason(d, "AMOUNT_OVER_LIMIT").threshold == 500
	every age in ["400", null, false, true, [400]] {
		d2 := decide({"subject": {"account_age_days": age}})
		[r.code | some r in d2.reasons] == ["AMOUNT_OVER_LIMIT"]
		reason(d2, "AMOUNT_OVER_LIMIT").threshold == 500
	}
}

test_invalid_amount_reviews if {
	every amount in ["1200", 0, -5, null, false, true, [1200], {"value": 1200}] {
		d := decide({"context": {"amount": amount}})
		d.outcome == "review"
		[r.code | some r in d.reasons] == ["AMOUNT_INVALID"]
	}
	d := payout.decision with input as json.remove(base, ["context/amount"])
	[r.code | some r in d.reasons] == ["AMOUNT_INVALID"]
	not d.reasons[0].value
}

test_invalid_amount_reports_the_posted_value if {
	reason(decide({"context": {"amount": "1200"}}), "AMOUNT_INVALID").value == "1200"
	reason(decide({"context": {"amount": -5}}), "AMOUNT_INVALID").value == -5
	not reason(decide({"context": {"amount": null}}), "AMOUNT_INVALID").value
}

test_crypto_over_limit_reviews if {
	d := decide({"context": {"payout_method": "crypto", "amount": 1001}})
	d.outcome == "review"
	codes(d) == {"CRYPTO_AMOUNT_OVER_LIMIT"}
}

test_crypto_at_limit_and_bank_over_crypto_limit_do_not_fire if {
	decide({"context": {"payout_method": "crypto", "amount": 1000}}).outcome == "approve"
	decide({"context": {"payout_method": "card", "amount": 5000}}).outcome == "approve"
}

# Beneficiary and device.

test_new_beneficiary_steps_up_otp if {
	d := decide({"context": {"new_beneficiary": true}})
	d.outcome == "step_up"
	d.step_up == "otp"
	codes(d) == {"NEW_BENEFICIARY"}
}

test_new_beneficiary_from_unknown_device_reviews if {
	d := decide({"context": {"new_beneficiary": true}, "signals": {"device": {"known": false, "age_hours": 0}}})
	d.outcome == "review"
	[r.code | some r in d.reasons] == ["NEW_BENEFICIARY_NEW_DEVICE", "NEW_BENEFICIARY"]
	r := reason(d, "NEW_BENEFICIARY_NEW_DEVICE")
	r.signal == "device.known"
	r.value == false
}

test_new_beneficiary_from_young_device_reviews if {
	d := decide({"context": {"new_beneficiary": true}, "signals": {"device": {"known": true, "age_hours": 3}}})
	codes(d) == {"NEW_BENEFICIARY", "NEW_BENEFICIARY_NEW_DEVICE"}
	r := reason(d, "NEW_BENEFICIARY_NEW_DEVICE")
	r.signal == "device.age_hours"
	r.value == 3
	r.threshold == 24
	decide({"context": {"new_beneficiary": true}, "signals": {"device": {"age_hours": 24}}}).outcome == "step_up"
}

test_new_device_alone_does_not_fire if {
	decide({"signals": {"device": {"known": false, "age_hours": 0}}}).outcome == "approve"
}

test_new_beneficiary_device_unavailable_infers_nothing if {
	d := decide({"context": {"new_beneficiary": true}, "signals": {"device": {"known": false}, "unavailable": ["device"]}})
	codes(d) == {"NEW_BENEFICIARY", "SIGNALS_DEGRADED"}
}

# Velocity.

test_user_velocity_1h if {
	decide({"signals": {"velocity": {"user": {"count_1h": 3}}}}).outcome == "approve"
	d := decide({"signals": {"velocity": {"user": {"count_1h": 4}}}})
	d.outcome == "review"
	codes(d) == {"USER_VELOCITY_1H"}
}

# Identity verification.

test_rejected_verification_blocks if {
	d := decide({"signals": {"verification": {"status": "rejected"}}})
	d.outcome == "block"
	codes(d) == {"VERIFICATION_REJECTED"}
}

test_unverified_over_limit_blocks if {
	every status in ["none", "initiated", "submitted", "pending_review", "needs_resubmission", "expired", ""] {
		d := decide({"context": {"amount": 201}, "signals": {"verification": {"status": status}}})
		d.outcome == "block"
		codes(d) == {"UNVERIFIED_OVER_LIMIT"}
	}
}

test_unverified_under_limit_steps_up_document if {
	d := decide({"context": {"amount": 200}, "signals": {"verification": {"status": "pending_review"}}})
	d.outcome == "step_up"
	d.step_up == "document"
	codes(d) == {"VERIFICATION_REQUIRED"}
	reason(d, "VERIFICATION_REQUIRED").value == "pending_review"
}

test_verification_unavailable_infers_nothing if {
	d := decide({"context": {"amount": 5000}, "signals": {"verification": {"status": ""}, "unavailable": ["verification"]}})
	d.outcome == "review"
	codes(d) == {"SIGNALS_DEGRADED"}
}

# Automation.

test_bot_scores if {
	decide({"behavior": {"bot_score": 0.79}}).outcome == "approve"
	decide({"behavior": {"bot_score": "0.9"}}).outcome == "approve"
	d := decide({"behavior": {"bot_score": 0.8}})
	d.outcome == "block"
	codes(d) == {"BOT_SCORE_HIGH"}
}

# Degraded signals.

test_signals_degraded_for_every_source if {
	every source in ["verification", "velocity", "lists", "device"] {
		d := decide({"signals": {"unavailable": [source]}})
		d.outcome == "review"
		"SIGNALS_DEGRADED" in codes(d)
	}
}

# Combination semantics.

test_document_wins_over_otp if {
	d := decide({"context": {"amount": 150, "new_beneficiary": true}, "signals": {"verification": {"status": "none"}}})
	d.outcome == "step_up"
	d.step_up == "document"
	[r.code | some r in d.reasons] == ["NEW_BENEFICIARY", "VERIFICATION_REQUIRED"]
	d.score == 35
}

test_account_takeover_pattern_blocks_with_every_reason if {
	d := decide({
		"context": {"amount": 4000, "payout_method": "crypto", "new_beneficiary": true},
		"behavior": {"bot_score": 0.85},
		"signals": {"device": {"known": false, "age_hours": 0}, "velocity": {"user": {"count_1h": 5}}},
	})
	d.outcome == "block"
	[r.code | some r in d.reasons] == [
		"BOT_SCORE_HIGH",
		"CRYPTO_AMOUNT_OVER_LIMIT", "NEW_BENEFICIARY_NEW_DEVICE", "USER_VELOCITY_1H",
		"NEW_BENEFICIARY",
	]
	d.score == 100
	not d.step_up
}

# A request without any verification signal is unverified.
test_missing_verification_signals_are_unverified if {
	inp := object.union(json.remove(base, ["signals"]), {"context": {"amount": 150}})
	d := payout.decision with input as inp
	codes(d) == {"VERIFICATION_REQUIRED"}
	reason(d, "VERIFICATION_REQUIRED").value == "none"
	d2 := payout.decision with input as object.union(inp, {"context": {"amount": 250}})
	codes(d2) == {"UNVERIFIED_OVER_LIMIT"}
}

# Thresholds as data.

test_threshold_override_raises_limits if {
	d := decide({"context": {"amount": 20000}}) with data.thresholds.payout as {"max_amount_established": 50000}
	d.outcome == "approve"
}

test_threshold_override_lowers_limits if {
	d := decide({"context": {"amount": 300, "payout_method": "crypto"}}) with data.thresholds.payout as {"max_crypto_amount": 250, "max_user_1h": 0}
	codes(d) == {"CRYPTO_AMOUNT_OVER_LIMIT", "USER_VELOCITY_1H"}
	reason(d, "CRYPTO_AMOUNT_OVER_LIMIT").threshold == 250
}

test_threshold_override_moves_every_limit if {
	overrides := {
		"new_account_days": 10, "max_amount_new_account": 100, "max_unverified_amount": 50,
		"new_device_hours": 100, "max_user_1h": 1, "bot_score_block": 0.5,
	}
	d := decide({
		"subject": {"account_age_days": 5}, "context": {"amount": 150, "new_beneficiary": true},
		"behavior": {"bot_score": 0.6}, "signals": {"device": {"age_hours": 50}, "velocity": {"user": {"count_1h": 2}}},
	}) with data.thresholds.payout as overrides
	codes(d) == {"AMOUNT_OVER_LIMIT", "NEW_BENEFICIARY", "NEW_BENEFICIARY_NEW_DEVICE", "USER_VELOCITY_1H", "BOT_SCORE_HIGH"}
}

test_threshold_override_shifts_account_tiers if {
	d := decide({"subject": {"account_age_days": 400}, "context": {"amount": 3000}}) with data.thresholds.payout as {"established_account_days": 500}
	codes(d) == {"AMOUNT_OVER_LIMIT"}
	reason(d, "AMOUNT_OVER_LIMIT").threshold == 2500
}

# A fresh approval approves; one older than max_verification_age_days goes to review.
test_stale_verification_reviews if {
	decide({"signals": {"verification": {"age_days": 365}}}).outcome == "approve"
	d := decide({"signals": {"verification": {"age_days": 400}}})
	d.outcome == "review"
	codes(d) == {"VERIFICATION_STALE"}
	reason(d, "VERIFICATION_STALE").threshold == 365
}

test_stale_rejected_is_not_stale if {
	d := decide({"signals": {"verification": {"status": "rejected", "age_days": 900}}})
	codes(d) == {"VERIFICATION_REJECTED"}
}
