package verdict.onboarding_test

import data.verdict.onboarding

# base is a clean signup with an approved verification: no rule fires on it.
base := {
	"action": "onboarding",
	"subject": {"id": "u_9", "account_age_days": 0, "country": "DE", "email_verified": true, "phone_verified": true},
	"device": {"id": "d_9", "platform": "android", "emulator": false, "rooted": false},
	"context": {"ip": "198.51.100.20", "country": "DE"},
	"behavior": {"bot_score": 0.1, "session_age_seconds": 300, "paste_in_credentials": false},
	"signals": {
		"verification": {"status": "approved", "provider": "veriff", "score": 0.97, "reason_codes": [], "age_days": 0},
		"velocity": {
			"user": {"count_1m": 1, "count_1h": 1, "count_24h": 1, "distinct_users_24h": 0, "distinct_devices_24h": 1},
			"device": {"count_1m": 1, "count_1h": 1, "count_24h": 1, "distinct_users_24h": 1, "distinct_devices_24h": 0},
			"ip": {"count_1m": 1, "count_1h": 1, "count_24h": 1, "distinct_users_24h": 1, "distinct_devices_24h": 0},
		},
		"device": {"known": false, "age_hours": 0, "users_seen": 1, "flagged": false},
		"lists": {"deny_user": false, "deny_device": false, "deny_ip": false, "deny_country": false},
		"unavailable": [],
	},
}

decide(patch) := d if {
	inp := object.union(base, patch)
	d := onboarding.decision with input as inp
}

codes(d) := {r.code | some r in d.reasons}

reason(d, code) := r if {
	some r in d.reasons
	r.code == code
}

test_approved_verification_approves if {
	decide({}) == {"outcome": "approve", "reasons": [], "score": 0}
}

# With nothing known, the subject must verify.
test_empty_input_requires_verification if {
	d := onboarding.decision with input as {}
	d.outcome == "step_up"
	d.step_up == "document"
	codes(d) == {"VERIFICATION_REQUIRED"}
	reason(d, "VERIFICATION_REQUIRED").value == "none"
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

test_missing_list_keys_do_not_fire if {
	decide({"signals": {"lists": null}}).outcome == "approve"
}

# Verification status.

test_verification_required_for_none_initiated_capturing_empty if {
	every status in ["none", "initiated", "capturing", ""] {
		d := decide({"signals": {"verification": {"status": status}}})
		d.outcome == "step_up"
		d.step_up == "document"
		codes(d) == {"VERIFICATION_REQUIRED"}
	}
}

test_verification_required_when_status_missing if {
	d := onboarding.decision with input as json.remove(base, ["signals/verification/status"])
	codes(d) == {"VERIFICATION_REQUIRED"}
}

test_verification_pending_reviews if {
	every status in ["submitted", "pending_review"] {
		d := decide({"signals": {"verification": {"status": status}}})
		d.outcome == "review"
		codes(d) == {"VERIFICATION_PENDING"}
		reason(d, "VERIFICATION_PENDING").value == status
	}
}

test_verification_resubmit_steps_up_document if {
	d := decide({"signals": {"verification": {"status": "needs_resubmission"}}})
	d.outcome == "step_up"
	d.step_up == "document"
	codes(d) == {"VERIFICATION_RESUBMIT"}
}

test_verification_expired_steps_up_document if {
	d := decide({"signals": {"verification": {"status": "expired"}}})
	d.outcome == "step_up"
	d.step_up == "document"
	codes(d) == {"VERIFICATION_EXPIRED"}
}

test_verification_rejected_blocks if {
	d := decide({"signals": {"verification": {"status": "rejected"}}})
	d.outcome == "block"
	codes(d) == {"VERIFICATION_REJECTED"}
}

test_verification_unknown_status_reviews if {
	every status in ["APPROVED", "cancelled", 7] {
		d := decide({"signals": {"verification": {"status": status}}})
		d.outcome == "review"
		codes(d) == {"VERIFICATION_STATUS_UNKNOWN"}
	}
}

test_verification_unavailable_guesses_nothing if {
	d := decide({"signals": {"verification": {"status": ""}, "unavailable": ["verification"]}})
	d.outcome == "review"
	codes(d) == {"SIGNALS_DEGRADED"}
}

# Abuse at scale.

test_device_shared_reviews_above_threshold if {
	d := decide({"signals": {"velocity": {"device": {"distinct_users_24h": 3}}}})
	d.outcome == "review"
	codes(d) == {"DEVICE_SHARED"}
	reason(d, "DEVICE_SHARED").threshold == 2
}

test_device_shared_at_threshold_does_not_fire if {
	decide({"signals": {"velocity": {"device": {"distinct_users_24h": 2}}}}).outcome == "approve"
}

test_ip_signup_velocity_reviews if {
	d := decide({"signals": {"velocity": {"ip": {"count_24h": 11}}}})
	d.outcome == "review"
	codes(d) == {"IP_SIGNUP_VELOCITY"}
}

test_ip_signup_velocity_at_threshold_does_not_fire if {
	decide({"signals": {"velocity": {"ip": {"count_24h": 10}}}}).outcome == "approve"
}

test_emulator_reviews if {
	d := decide({"device": {"emulator": true}})
	d.outcome == "review"
	codes(d) == {"DEVICE_EMULATOR"}
}

# Email.

test_disposable_email_reviews if {
	d := decide({"signals": {"lists": {"disposable_email": true}}})
	d.outcome == "review"
	codes(d) == {"EMAIL_DISPOSABLE"}
}

test_unverified_email_steps_up_otp if {
	d := decide({"subject": {"email_verified": false}})
	d.outcome == "step_up"
	d.step_up == "otp"
	codes(d) == {"EMAIL_UNVERIFIED"}
}

test_unknown_email_verification_does_not_fire if {
	d := onboarding.decision with input as json.remove(base, ["subject/email_verified"])
	d.outcome == "approve"
}

# Degraded signals.

test_signals_degraded_for_every_source if {
	every source in ["verification", "velocity", "lists", "device"] {
		d := decide({"signals": {"unavailable": [source]}})
		d.outcome == "review"
		codes(d) == {"SIGNALS_DEGRADED"}
	}
}

test_unknown_unavailable_source_ignored if {
	decide({"signals": {"unavailable": ["weather"]}}).outcome == "approve"
}

# Combination semantics.

test_document_beats_otp_when_both_step_up if {
	d := decide({"subject": {"email_verified": false}, "signals": {"verification": {"status": "none"}}})
	d.outcome == "step_up"
	d.step_up == "document"
	[r.code | some r in d.reasons] == ["EMAIL_UNVERIFIED", "VERIFICATION_REQUIRED"]
	d.score == 20
}

test_block_wins_and_keeps_every_reason if {
	d := decide({
		"device": {"emulator": true},
		"signals": {
			"verification": {"status": "rejected"},
			"lists": {"deny_country": true, "disposable_email": true},
		},
	})
	d.outcome == "block"
	[r.code | some r in d.reasons] == [
		"DENY_LIST_COUNTRY", "VERIFICATION_REJECTED",
		"DEVICE_EMULATOR", "EMAIL_DISPOSABLE",
	]
	d.score == 100
}

test_review_beats_step_up if {
	d := decide({"subject": {"email_verified": false}, "signals": {"verification": {"status": "pending_review"}}})
	d.outcome == "review"
	not d.step_up
	codes(d) == {"EMAIL_UNVERIFIED", "VERIFICATION_PENDING"}
}

# Thresholds as data.

test_threshold_override if {
	inp := {"signals": {"velocity": {"device": {"distinct_users_24h": 3}}}}
	decide(inp).outcome == "review"
	decide(inp).outcome == "approve" with data.thresholds.onboarding as {"max_device_users_24h": 5}
	d := decide({"signals": {"velocity": {"ip": {"count_24h": 4}}}}) with data.thresholds.onboarding as {"max_ip_signups_24h": 3}
	codes(d) == {"IP_SIGNUP_VELOCITY"}
}

# A fresh approval approves; one older than max_verification_age_days goes to review.
test_stale_verification_reviews if {
	decide({"signals": {"verification": {"age_days": 365}}}).outcome == "approve"
	d := decide({"signals": {"verification": {"age_days": 366}}})
	d.outcome == "review"
	codes(d) == {"VERIFICATION_STALE"}
	reason(d, "VERIFICATION_STALE").threshold == 365
}

test_stale_threshold_is_data if {
	d := onboarding.decision with input as object.union(base, {"signals": {"verification": {"age_days": 40}}})
		with data.thresholds.onboarding as {"max_verification_age_days": 30}
	codes(d) == {"VERIFICATION_STALE"}
}
