package verdict.login_test

import data.verdict.login

# base is a legitimate, unremarkable login: no rule fires on it.
base := {
	"action": "login",
	"subject": {"id": "u_1", "account_age_days": 400, "country": "FR", "email_verified": true},
	"device": {"id": "d_1", "platform": "ios", "emulator": false, "rooted": false},
	"context": {"ip": "203.0.113.7", "country": "FR", "auth_method": "password", "failed_attempts": 0},
	"behavior": {"bot_score": 0.05, "session_age_seconds": 40, "paste_in_credentials": false},
	"signals": {
		"verification": {"status": "none", "provider": "", "score": 0, "reason_codes": [], "age_days": 0},
		"velocity": {
			"user": {"count_1m": 1, "count_1h": 2, "count_24h": 3, "distinct_users_24h": 0, "distinct_devices_24h": 1},
			"device": {"count_1m": 1, "count_1h": 2, "count_24h": 3, "distinct_users_24h": 1, "distinct_devices_24h": 0},
			"ip": {"count_1m": 1, "count_1h": 2, "count_24h": 3, "distinct_users_24h": 1, "distinct_devices_24h": 0},
		},
		"device": {"known": true, "age_hours": 2000, "users_seen": 1, "flagged": false},
		"lists": {
			"deny_user": false, "deny_device": false, "deny_ip": false, "deny_country": false,
			"allow_user": false, "allow_device": false, "allow_ip": false,
			"watch_user": false, "watch_device": false, "watch_ip": false,
		},
		"unavailable": [],
	},
}

# decide evaluates the login policy on base deep-merged with patch.
decide(patch) := d if {
	inp := object.union(base, patch)
	d := login.decision with input as inp
}

codes(d) := {r.code | some r in d.reasons}

reason(d, code) := r if {
	some r in d.reasons
	r.code == code
}

# Baseline and tolerance of missing fields.

test_clean_login_approves if {
	decide({}) == {"outcome": "approve", "reasons": [], "score": 0}
}

test_empty_input_approves if {
	d := login.decision with input as {}
	d == {"outcome": "approve", "reasons": [], "score": 0}
}

test_empty_objects_and_null_signals_approve if {
	d := login.decision with input as {
		"action": "login", "subject": {}, "device": {}, "context": {}, "behavior": {},
		"signals": {"lists": null, "unavailable": null},
	}
	d.outcome == "approve"
}

# Deny lists.

test_deny_list_user_blocks if {
	d := decide({"signals": {"lists": {"deny_user": true}}})
	d.outcome == "block"
	codes(d) == {"DENY_LIST_USER"}
	d.score == 100
	reason(d, "DENY_LIST_USER").signal == "lists.deny_user"
}

test_deny_list_device_blocks if {
	d := decide({"signals": {"lists": {"deny_device": true}}})
	d.outcome == "block"
	codes(d) == {"DENY_LIST_DEVICE"}
}

test_deny_list_ip_blocks if {
	d := decide({"signals": {"lists": {"deny_ip": true}}})
	d.outcome == "block"
	codes(d) == {"DENY_LIST_IP"}
}

test_deny_list_country_blocks if {
	d := decide({"signals": {"lists": {"deny_country": true}}})
	d.outcome == "block"
	codes(d) == {"DENY_LIST_COUNTRY"}
}

test_watch_lists_alone_do_not_fire if {
	d := decide({"signals": {"lists": {"watch_user": true, "watch_device": true, "watch_ip": true}}})
	d.outcome == "approve"
}

test_missing_list_keys_do_not_fire if {
	d := login.decision with input as object.remove(base, ["signals"])
	d.outcome == "approve"
}

# Allow list.

test_allow_list_user_is_reported if {
	d := decide({"signals": {"lists": {"allow_user": true}}})
	d.outcome == "approve"
	codes(d) == {"ALLOW_LIST_USER"}
	d.score == 0
}

test_allow_list_user_skips_new_device_and_country if {
	d := decide({
		"context": {"country": "BR"},
		"signals": {"device": {"known": false}, "lists": {"allow_user": true}},
	})
	d.outcome == "approve"
	codes(d) == {"ALLOW_LIST_USER"}
}

test_allow_list_user_does_not_skip_deny_list if {
	d := decide({"signals": {"lists": {"allow_user": true, "deny_user": true}}})
	d.outcome == "block"
	codes(d) == {"DENY_LIST_USER", "ALLOW_LIST_USER"}
}

test_allow_list_user_does_not_skip_attack_patterns if {
	d := decide({
		"behavior": {"bot_score": 0.8},
		"signals": {"lists": {"allow_user": true}, "velocity": {"ip": {"distinct_users_24h": 40}}},
	})
	d.outcome == "review"
	codes(d) == {"ALLOW_LIST_USER", "BOT_SCORE_ELEVATED", "IP_MANY_USERS_24H"}
}

# Credential stuffing and brute force.

test_ip_velocity_1m_blocks_above_threshold if {
	d := decide({"signals": {"velocity": {"ip": {"count_1m": 21}}}})
	d.outcome == "block"
	codes(d) == {"IP_VELOCITY_1M"}
	r := reason(d, "IP_VELOCITY_1M")
	r.signal == "velocity.ip.count_1m"
	r.value == 21
	r.threshold == 20
}

test_ip_velocity_1m_at_threshold_does_not_fire if {
	decide({"signals": {"velocity": {"ip": {"count_1m": 20}}}}).outcome == "approve"
}

test_ip_many_users_reviews if {
	d := decide({"signals": {"velocity": {"ip": {"distinct_users_24h": 6}}}})
	d.outcome == "review"
	codes(d) == {"IP_MANY_USERS_24H"}
}

test_ip_many_users_at_threshold_does_not_fire if {
	decide({"signals": {"velocity": {"ip": {"distinct_users_24h": 5}}}}).outcome == "approve"
}

test_user_velocity_1h_reviews if {
	d := decide({"signals": {"velocity": {"user": {"count_1h": 11}}}})
	d.outcome == "review"
	codes(d) == {"USER_VELOCITY_1H"}
}

test_user_velocity_1h_at_threshold_does_not_fire if {
	decide({"signals": {"velocity": {"user": {"count_1h": 10}}}}).outcome == "approve"
}

test_failed_attempts_steps_up if {
	d := decide({"context": {"failed_attempts": 4}})
	d.outcome == "step_up"
	d.step_up == "otp"
	codes(d) == {"FAILED_ATTEMPTS"}
}

test_failed_attempts_at_threshold_does_not_fire if {
	decide({"context": {"failed_attempts": 3}}).outcome == "approve"
}

test_failed_attempts_not_a_number_does_not_fire if {
	decide({"context": {"failed_attempts": "9"}}).outcome == "approve"
}

# Device.

test_new_device_steps_up_with_otp if {
	d := decide({"signals": {"device": {"known": false, "age_hours": 0}}})
	d == {
		"outcome": "step_up",
		"step_up": "otp",
		"score": 20,
		"reasons": [{
			"code": "NEW_DEVICE", "outcome": "step_up", "score": 20, "step_up": "otp",
			"message": "First time this device is seen", "signal": "device.known", "value": false,
		}],
	}
}

test_new_device_with_passkey_does_not_fire if {
	d := decide({"context": {"auth_method": "passkey"}, "signals": {"device": {"known": false}}})
	d.outcome == "approve"
}

test_new_device_without_auth_method_fires if {
	inp := object.union(base, {"signals": {"device": {"known": false}}})
	d := login.decision with input as json.remove(inp, ["context/auth_method"])
	codes(d) == {"NEW_DEVICE"}
}

test_new_device_when_device_signals_unavailable_does_not_fire if {
	d := decide({"signals": {"device": {"known": false}, "unavailable": ["device"]}})
	codes(d) == {"SIGNALS_DEGRADED"}
}

test_device_missing_known_does_not_fire if {
	d := decide({"signals": {"device": {"known": null}}})
	d.outcome == "approve"
}

test_emulator_reviews if {
	d := decide({"device": {"emulator": true}})
	d.outcome == "review"
	codes(d) == {"DEVICE_EMULATOR"}
}

test_rooted_steps_up if {
	d := decide({"device": {"rooted": true}})
	d.outcome == "step_up"
	d.step_up == "otp"
	codes(d) == {"DEVICE_ROOTED"}
}

# Automation.

test_bot_score_high_blocks if {
	d := decide({"behavior": {"bot_score": 0.9}})
	d.outcome == "block"
	codes(d) == {"BOT_SCORE_HIGH"}
}

test_bot_score_elevated_reviews if {
	d := decide({"behavior": {"bot_score": 0.7}})
	d.outcome == "review"
	codes(d) == {"BOT_SCORE_ELEVATED"}
	reason(d, "BOT_SCORE_ELEVATED").threshold == 0.7
}

test_bot_score_below_review_does_not_fire if {
	decide({"behavior": {"bot_score": 0.69}}).outcome == "approve"
}

# Location.

test_unusual_country_steps_up if {
	d := decide({"context": {"country": "BR"}})
	d.outcome == "step_up"
	codes(d) == {"UNUSUAL_COUNTRY"}
	r := reason(d, "UNUSUAL_COUNTRY")
	r.value == "BR"
	r.threshold == "FR"
}

test_unusual_country_needs_both_countries if {
	decide({"context": {"country": "BR"}, "subject": {"country": ""}}).outcome == "approve"
	inp := json.remove(base, ["subject/country"])
	d := login.decision with input as object.union(inp, {"context": {"country": "BR"}})
	d.outcome == "approve"
}

# Degraded signals.

test_signals_degraded_reviews_for_each_login_source if {
	every source in ["velocity", "lists", "device"] {
		d := decide({"signals": {"unavailable": [source]}})
		d.outcome == "review"
		codes(d) == {"SIGNALS_DEGRADED"}
		reason(d, "SIGNALS_DEGRADED").value == [source]
	}
}

test_signals_degraded_ignores_verification if {
	decide({"signals": {"unavailable": ["verification"]}}).outcome == "approve"
}

# Combination semantics.

test_most_severe_wins_and_all_reasons_kept if {
	d := decide({
		"context": {"country": "BR"},
		"device": {"emulator": true},
		"signals": {"device": {"known": false}, "lists": {"deny_ip": true}},
	})
	d.outcome == "block"
	[r.code | some r in d.reasons] == ["DENY_LIST_IP", "DEVICE_EMULATOR", "NEW_DEVICE", "UNUSUAL_COUNTRY"]
	d.score == 100
	not d.step_up
}

test_scores_add_up if {
	d := decide({"context": {"country": "BR"}, "signals": {"device": {"known": false}}})
	d.outcome == "step_up"
	d.score == 35
	codes(d) == {"NEW_DEVICE", "UNUSUAL_COUNTRY"}
}

# Thresholds as data.

test_threshold_override_raises_limit if {
	d := decide({"signals": {"velocity": {"ip": {"distinct_users_24h": 6}}}}) with data.thresholds.login as {"max_ip_users_24h": 50}
	d.outcome == "approve"
}

test_threshold_override_lowers_limit if {
	d := decide({"signals": {"velocity": {"user": {"count_1h": 3}}}}) with data.thresholds.login as {"max_user_1h": 2}
	codes(d) == {"USER_VELOCITY_1H"}
	reason(d, "USER_VELOCITY_1H").threshold == 2
}

test_threshold_override_keeps_other_defaults if {
	login.thresholds.max_ip_1m == 20 with data.thresholds.login as {"max_user_1h": 2}
	login.thresholds.max_user_1h == 2 with data.thresholds.login as {"max_user_1h": 2}
}

test_other_actions_thresholds_do_not_apply if {
	login.thresholds == login.default_thresholds with data.thresholds.payout as {"max_user_1h": 1}
}
