# METADATA
# title: Payout risk policy
# description: |
#   Money leaving the platform. The action fails closed: when a signal source is down the
#   policy reports SIGNALS_DEGRADED (review) and the engine's fail mode blocks.
#   - Deny lists (user, device, IP, country), a rejected verification, an unverified subject
#     above max_unverified_amount and near-certain bots block.
#   - Amounts above the account-age tier limit, crypto payouts above max_crypto_amount,
#     payout bursts per user, a new beneficiary from a new device, flagged devices, likely
#     bots and requests without a positive numeric amount go to review.
#   - An unverified subject under the limit or a verification older than
#     max_verification_age_days asks for a document; a new beneficiary asks for a one-time code.
#   Amounts are in the platform's reference currency (the caller converts). A subject whose
#   account age is unknown gets the new-account limit. A device is new when it was never
#   seen or was first seen less than new_device_hours ago.
#   Thresholds are data: data.thresholds.payout overrides default_thresholds key by key.
#   max_* thresholds fire above the limit, bot_score_* at or above it, *_days/_hours
#   account and device ages below it.
# custom:
#   version: payout-2026.11.1
#   fail_mode: closed
package verdict.payout

import data.verdict.lib

default_thresholds := {
	"new_account_days": 30, # accounts younger than this get max_amount_new_account
	"established_account_days": 180, # accounts at least this old get max_amount_established
	"max_amount_new_account": 500,
	"max_amount_young_account": 2500, # between new_account_days and established_account_days
	"max_amount_established": 10000,
	"max_crypto_amount": 1000, # crypto payouts above this go to review whatever the tier
	"max_unverified_amount": 200, # unverified subjects: block above, ask for a document at or under
	"max_verification_age_days": 365, # an approved verification older than this must be renewed
	"new_device_hours": 24, # a device first seen less than this ago is new
	"max_user_1h": 3, # payouts per user in 1 hour
	"max_user_24h": 10, # payouts per user in 24 hours
	"bot_score_review": 0.5,
	"bot_score_block": 0.8,
}

# thresholds are the defaults overridden key by key by data.thresholds.payout. The
# comprehension is {} when no override is loaded; object.get(data, ...) would make this
# rule depend on all of data, itself included, which OPA rejects as recursive.
thresholds := object.union(default_thresholds, {k: v | some k, v in data.thresholds.payout})

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

# Amount.

reasons contains lib.reason_at("AMOUNT_OVER_LIMIT", "review", 40, "Amount is above the limit for the account's age", "context.amount", amount, amount_limit) if {
	amount > amount_limit
}

reasons contains lib.reason_at("AMOUNT_INVALID", "review", 30, "Payout amount is missing, not a number or not positive", "context.amount", object.get(input, ["context", "amount"], null), null) if {
	not amount
}

reasons contains lib.reason_at("CRYPTO_AMOUNT_OVER_LIMIT", "review", 40, "Crypto payout above the crypto limit", "context.amount", amount, thresholds.max_crypto_amount) if {
	input.context.payout_method == "crypto"
	amount > thresholds.max_crypto_amount
}

# Beneficiary and device.

reasons contains lib.step_up_at("NEW_BENEFICIARY", 15, "Payout to a new beneficiary", "otp", "context.new_beneficiary", true, null) if {
	input.context.new_beneficiary == true
}

reasons contains lib.reason_at("NEW_BENEFICIARY_NEW_DEVICE", "review", 50, "New beneficiary added from a new device", "device.age_hours", object.get(input, ["signals", "device", "age_hours"], null), thresholds.new_device_hours) if {
	input.context.new_beneficiary == true
	new_device
}

reasons contains lib.reason_at("DEVICE_FLAGGED", "review", 50, "Device is flagged by device reputation", "device.flagged", true, null) if {
	input.signals.device.flagged == true
}

# Velocity.

reasons contains lib.reason_at("USER_VELOCITY_1H", "review", 30, "Too many payouts for this user in the last hour", "velocity.user.count_1h", n, thresholds.max_user_1h) if {
	n := input.signals.velocity.user.count_1h
	n > thresholds.max_user_1h
}

reasons contains lib.reason_at("USER_VELOCITY_24H", "review", 30, "Too many payouts for this user in 24 hours", "velocity.user.count_24h", n, thresholds.max_user_24h) if {
	n := input.signals.velocity.user.count_24h
	n > thresholds.max_user_24h
}

# Identity verification.

reasons contains lib.reason_at("VERIFICATION_REJECTED", "block", 100, "Identity verification was rejected", "verification.status", verification_status, null) if {
	verification_status == "rejected"
}

reasons contains lib.reason_at("UNVERIFIED_OVER_LIMIT", "block", 80, "Identity not verified for this amount", "context.amount", amount, thresholds.max_unverified_amount) if {
	unverified
	over_unverified_limit
}

# Under the limit, or with no numeric amount (AMOUNT_INVALID sends that to review anyway).
reasons contains lib.step_up_at("VERIFICATION_REQUIRED", 20, "Identity verification required before a payout", "document", "verification.status", verification_status, null) if {
	unverified
	not over_unverified_limit
}

reasons contains lib.step_up_at("VERIFICATION_STALE", 20, "Identity verification is too old", "document", "verification.age_days", age, thresholds.max_verification_age_days) if {
	verification_status == "approved"
	age := input.signals.verification.age_days
	age > thresholds.max_verification_age_days
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

# Degraded signals.

reasons contains lib.reason_at("SIGNALS_DEGRADED", "review", 10, "Some risk signals were unavailable", "signals.unavailable", input.signals.unavailable, null) if {
	some source in {"verification", "velocity", "lists", "device"}
	source in unavailable
}

# amount is the requested amount, undefined unless it is a positive number.
amount := input.context.amount if {
	is_number(input.context.amount)
	input.context.amount > 0
}

# amount_limit is the payout limit for the subject's account age.
amount_limit := thresholds.max_amount_established if {
	account_age_days >= thresholds.established_account_days
} else := thresholds.max_amount_young_account if {
	account_age_days >= thresholds.new_account_days
} else := thresholds.max_amount_new_account

account_age_days := input.subject.account_age_days if is_number(input.subject.account_age_days)

# new_device holds when the device was never seen or first seen less than
# new_device_hours ago. Nothing is inferred when device signals are unavailable.
new_device if {
	not "device" in unavailable
	input.signals.device.known == false
}

new_device if {
	not "device" in unavailable
	input.signals.device.age_hours < thresholds.new_device_hours
}

# unverified holds when the subject has no approved verification and was not rejected
# (a rejection blocks on its own). Nothing is inferred when verification is unavailable.
unverified if {
	status := verification_status
	not status in {"approved", "rejected"}
}

over_unverified_limit if amount > thresholds.max_unverified_amount

# verification_status is the latest verification status, "none" when absent or empty,
# undefined when the verification source was unavailable.
verification_status := s if {
	not "verification" in unavailable
	s := object.get(input, ["signals", "verification", "status"], "none")
	s != ""
} else := "none" if {
	not "verification" in unavailable
}

unavailable := {s | some s in input.signals.unavailable}
