# METADATA
# title: Login risk policy
# description: |
#   Account-takeover defence for sign-in.
#   - Deny lists (user, device, IP, country), bursts of attempts from one IP and near-certain
#     bots block.
#   - Credential stuffing (one IP trying many users), brute force against one user,
#     emulators and likely bots go to review.
#   - A new device, a rooted device, repeated failed attempts or a sign-in from another
#     country than the subject's ask for a one-time code.
#   - allow_user marks an account the operator vouches for (staff, QA, a cleared false
#     positive). It only skips the friction rules that describe the legitimate user's own
#     circumstances (NEW_DEVICE, UNUSUAL_COUNTRY) and is reported as ALLOW_LIST_USER. It
#     never skips a deny list, an attack pattern or a device/bot signal: an allow-listed
#     account is exactly what an attacker wants to take over.
#   - A passkey login is phishing-resistant, so a new device alone does not ask for more.
#   - When velocity, lists or device signals are unavailable the policy says so
#     (SIGNALS_DEGRADED, review), matching the action's fail mode.
#   Thresholds are data: data.thresholds.login overrides default_thresholds key by key.
#   max_* thresholds fire above the limit, bot_score_* thresholds at or above it.
# custom:
#   version: login-2026.11.1
#   fail_mode: review
package verdict.login

import data.verdict.lib

default_thresholds := {
	"max_ip_1m": 20, # login attempts from one IP in 1 minute: above is automation
	"max_ip_users_24h": 5, # distinct users seen from one IP in 24 h: above is credential stuffing
	"max_user_1h": 10, # login attempts for one user in 1 hour: above is brute force
	"max_failed_attempts": 3, # failed attempts the auth service reports for this login
	"bot_score_review": 0.7, # behavior.bot_score at or above: review
	"bot_score_block": 0.9, # behavior.bot_score at or above: block
}

# thresholds are the defaults overridden key by key by data.thresholds.login. The
# comprehension is {} when no override is loaded; object.get(data, ...) would make this
# rule depend on all of data, itself included, which OPA rejects as recursive.
thresholds := object.union(default_thresholds, {k: v | some k, v in data.thresholds.login})

decision := lib.decide(reasons)

# Deny lists.

reasons contains lib.reason_at("DENY_LIST_USER", "block", 100, "User is on the deny list", "lists.deny_user", true, null) if {
	input.signals.lists.deny_user == true
}

reasons contains lib.reason_at("DENY_LIST_DEVICE", "block", 100, "Device is on the deny list", "lists.deny_device", true, null) if {
	input.signals.lists.deny_device == true
}

reasons contains lib.reason_at("DENY_LIST_IP", "block", 100, "IP address is on the deny list", "lists.deny_ip", true, null) if {
	input.signals.lists.deny_ip == true
}

reasons contains lib.reason_at("DENY_LIST_COUNTRY", "block", 100, "Country is sanctioned or not served", "lists.deny_country", true, null) if {
	input.signals.lists.deny_country == true
}

# Allow list: informational, its effect is the allow-list guard on the friction rules.

reasons contains lib.reason_at("ALLOW_LIST_USER", "approve", 0, "User is on the allow list; new-device and country checks skipped", "lists.allow_user", true, null) if {
	allow_listed
}

# Credential stuffing and brute force.

reasons contains lib.reason_at("IP_VELOCITY_1M", "block", 60, "Burst of login attempts from this IP in the last minute", "velocity.ip.count_1m", n, thresholds.max_ip_1m) if {
	n := input.signals.velocity.ip.count_1m
	n > thresholds.max_ip_1m
}

reasons contains lib.reason_at("IP_MANY_USERS_24H", "review", 40, "Many different users signed in from this IP in 24 hours", "velocity.ip.distinct_users_24h", n, thresholds.max_ip_users_24h) if {
	n := input.signals.velocity.ip.distinct_users_24h
	n > thresholds.max_ip_users_24h
}

reasons contains lib.reason_at("USER_VELOCITY_1H", "review", 30, "Too many login attempts for this user in the last hour", "velocity.user.count_1h", n, thresholds.max_user_1h) if {
	n := input.signals.velocity.user.count_1h
	n > thresholds.max_user_1h
}

reasons contains lib.step_up_at("FAILED_ATTEMPTS", 20, "Repeated failed attempts before this login", "otp", "context.failed_attempts", n, thresholds.max_failed_attempts) if {
	n := input.context.failed_attempts
	is_number(n)
	n > thresholds.max_failed_attempts
}

# Device.

reasons contains lib.step_up_at("NEW_DEVICE", 20, "First time this device is seen", "otp", "device.known", false, null) if {
	input.signals.device.known == false
	not "device" in unavailable
	object.get(input, ["context", "auth_method"], "") != "passkey"
	not allow_listed
}

reasons contains lib.reason_at("DEVICE_EMULATOR", "review", 40, "Request comes from an emulator", "device.emulator", true, null) if {
	input.device.emulator == true
}

reasons contains lib.step_up_at("DEVICE_ROOTED", 15, "Device is rooted or jailbroken", "otp", "device.rooted", true, null) if {
	input.device.rooted == true
}

# Automation.

reasons contains lib.reason_at("BOT_SCORE_HIGH", "block", 80, "Behavior is almost certainly automated", "behavior.bot_score", s, thresholds.bot_score_block) if {
	s := input.behavior.bot_score
	is_number(s)
	s >= thresholds.bot_score_block
}

reasons contains lib.reason_at("BOT_SCORE_ELEVATED", "review", 30, "Behavior looks automated", "behavior.bot_score", s, thresholds.bot_score_review) if {
	s := input.behavior.bot_score
	is_number(s)
	s >= thresholds.bot_score_review
	s < thresholds.bot_score_block
}

# Location.

reasons contains lib.step_up_at("UNUSUAL_COUNTRY", 15, "Sign-in from another country than the account's", "otp", "context.country", input.context.country, input.subject.country) if {
	is_string(input.context.country)
	is_string(input.subject.country)
	input.context.country != ""
	input.subject.country != ""
	input.context.country != input.subject.country
	not allow_listed
}

# Degraded signals.

reasons contains lib.reason_at("SIGNALS_DEGRADED", "review", 10, "Some risk signals were unavailable", "signals.unavailable", input.signals.unavailable, null) if {
	some source in {"velocity", "lists", "device"}
	source in unavailable
}

allow_listed if input.signals.lists.allow_user == true

unavailable := {s | some s in input.signals.unavailable}
