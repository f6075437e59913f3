# METADATA
# title: Payout risk policy
# description: |
#   Money leaving the platform. The action fails closed: when a signal source is down the
#   policy reports SIGNALS_DEGRADED (review) and the engine's fail mode blocks.
#   - Deny lists (user, device, IP, country), a rejected verification, an unverified subject
#     above max_unverified_amount and near-certain bots block.
#   - Amounts above the account-age tier limit, crypto payouts above max_crypto_amount,
#     payout bursts per user, a new beneficiary from a new device and requests without a
#     positive numeric amount go to review.
#   - An unverified subject under the limit asks for a document; a new beneficiary asks for
#     a one-time code.
#   Amounts are in the platform's reference currency (the caller converts). A subject whose
#   account age is unknown gets the new-account limit. A device is new when it was never
#   seen or was first seen less than new_device_hours ago.
#   Thresholds are data: data.thresholds.payout overrides default_thresholds key by key.
#   max_* thresholds fire above the limit, bot_score_* at or above it, *_days/_hours
#   account and device ages below it.
#   Every payout request evaluates this policy, so it is written to stay cheap: rules read
#   input fields directly (no object.get on the whole input, no comprehension), and each
#   puts first the test an ordinary payout fails.
# custom:
#   version: payout-2026.12.1
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
	"new_device_hours": 24, # a device first seen less than this ago is new
	"max_user_1h": 3, # payouts per user in 1 hour
	"bot_score_block": 0.8, # behavior.bot_score at or above: block
	"max_verification_age_days": 365, # an approval older than this is stale: review
}

# thresholds are the defaults overridden key by key by data.thresholds.payout.
thresholds := object.union(default_thresholds, threshold_overrides)

# threshold_overrides is data.thresholds.payout, {} when no override is loaded. (Reading
# it through object.get(data, ...) would make this rule depend on all of data, itself
# included, which OPA rejects as recursive.)
default threshold_overrides := {}

threshold_overrides := o if {
	o := data.thresholds.payout
	is_object(o)
}

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

# Amount: one rule per account-age tier. Types are checked after the comparisons (Rego
# orders a string above any number, null and booleans below).

reasons contains lib.reason_at("AMOUNT_OVER_LIMIT", "review", 40, "Amount is above the limit for the account's age", "context.amount", input.context.amount, thresholds.max_amount_established) if {
	input.context.amount > thresholds.max_amount_established
	is_number(input.context.amount)
	input.subject.account_age_days >= thresholds.established_account_days
	is_number(input.subject.account_age_days)
}

reasons contains lib.reason_at("AMOUNT_OVER_LIMIT", "review", 40, "Amount is above the limit for the account's age", "context.amount", input.context.amount, thresholds.max_amount_young_account) if {
	input.context.amount > thresholds.max_amount_young_account
	is_number(input.context.amount)
	input.subject.account_age_days >= thresholds.new_account_days
	input.subject.account_age_days < thresholds.established_account_days
}

# New accounts, and accounts whose age is missing or not a number, get the new-account
# limit: one rule per case, so that each fails on its first test for an established
# account.
reasons contains lib.reason_at("AMOUNT_OVER_LIMIT", "review", 40, "Amount is above the limit for the account's age", "context.amount", input.context.amount, thresholds.max_amount_new_account) if {
	input.subject.account_age_days < thresholds.new_account_days
	is_number(input.subject.account_age_days)
	input.context.amount > thresholds.max_amount_new_account
	is_number(input.context.amount)
}

reasons contains lib.reason_at("AMOUNT_OVER_LIMIT", "review", 40, "Amount is above the limit for the account's age", "context.amount", input.context.amount, thresholds.max_amount_new_account) if {
	not input.subject.account_age_days
	input.context.amount > thresholds.max_amount_new_account
	is_number(input.context.amount)
}

reasons contains lib.reason_at("AMOUNT_OVER_LIMIT", "review", 40, "Amount is above the limit for the account's age", "context.amount", input.context.amount, thresholds.max_amount_new_account) if {
	not is_number(input.subject.account_age_days)
	input.context.amount > thresholds.max_amount_new_account
	is_number(input.context.amount)
}

# An amount that is missing (or false), not a number, or a number not above zero: one
# rule per case.
reasons contains lib.reason_at("AMOUNT_INVALID", "review", 30, "Payout amount is missing, not a number or not positive", "context.amount", null, null) if {
	not input.context.amount
}

reasons contains lib.reason_at("AMOUNT_INVALID", "review", 30, "Payout amount is missing, not a number or not positive", "context.amount", input.context.amount, null) if {
	not is_number(input.context.amount)
	input.context.amount != false # reported by the rule above
}

reasons contains lib.reason_at("AMOUNT_INVALID", "review", 30, "Payout amount is missing, not a number or not positive", "context.amount", input.context.amount, null) if {
	input.context.amount <= 0
	is_number(input.context.amount)
}

reasons contains lib.reason_at("CRYPTO_AMOUNT_OVER_LIMIT", "review", 40, "Crypto payout above the crypto limit", "context.amount", input.context.amount, thresholds.max_crypto_amount) if {
	input.context.payout_method == "crypto"
	input.context.amount > thresholds.max_crypto_amount
	is_number(input.context.amount)
}

# Beneficiary and device. A device is new when it was never seen or first seen less than
# new_device_hours ago; nothing is inferred when device signals are unavailable.

reasons contains lib.step_up_at("NEW_BENEFICIARY", 15, "Payout to a new beneficiary", "otp", "context.new_beneficiary", true, null) if {
	input.context.new_beneficiary == true
}

reasons contains lib.reason_at("NEW_BENEFICIARY_NEW_DEVICE", "review", 50, "New beneficiary added from a device never seen before", "device.known", false, null) if {
	input.context.new_beneficiary == true
	input.signals.device.known == false
	not device_unavailable
}

reasons contains lib.reason_at("NEW_BENEFICIARY_NEW_DEVICE", "review", 50, "New beneficiary added from a device first seen recently", "device.age_hours", input.signals.device.age_hours, thresholds.new_device_hours) if {
	input.context.new_beneficiary == true
	input.signals.device.age_hours < thresholds.new_device_hours
	not input.signals.device.known == false # reported by the rule above
	not device_unavailable
}

# Velocity.

reasons contains lib.reason_at("USER_VELOCITY_1H", "review", 30, "Too many payouts for this user in the last hour", "velocity.user.count_1h", input.signals.velocity.user.count_1h, thresholds.max_user_1h) if {
	input.signals.velocity.user.count_1h > thresholds.max_user_1h
}

# Identity verification. A subject is unverified unless its latest verification was
# approved or rejected (a rejection blocks on its own); nothing is inferred when the
# verification source is unavailable. The cheapest tests come first: most subjects are
# approved.

reasons contains lib.reason_at("VERIFICATION_REJECTED", "block", 100, "Identity verification was rejected", "verification.status", "rejected", null) if {
	input.signals.verification.status == "rejected"
}

reasons contains lib.reason_at("UNVERIFIED_OVER_LIMIT", "block", 80, "Identity not verified for this amount", "context.amount", input.context.amount, thresholds.max_unverified_amount) if {
	not input.signals.verification.status == "approved"
	not input.signals.verification.status == "rejected"
	input.context.amount > thresholds.max_unverified_amount
	is_number(input.context.amount)
	not verification_unavailable
}

reasons contains lib.reason_at("VERIFICATION_STALE", "review", 30, "Identity verification is too old to rely on", "verification.age_days", input.signals.verification.age_days, thresholds.max_verification_age_days) if {
	input.signals.verification.status == "approved"
	input.signals.verification.age_days > thresholds.max_verification_age_days
}

# Under the limit, or with no numeric amount (AMOUNT_INVALID sends that to review anyway).
reasons contains lib.step_up_at("VERIFICATION_REQUIRED", 20, "Identity verification required before a payout", "document", "verification.status", verification_status, null) if {
	not input.signals.verification.status == "approved"
	not input.signals.verification.status == "rejected"
	not verification_unavailable
	not over_unverified_limit
}

# Automation.

reasons contains lib.reason_at("BOT_SCORE_HIGH", "block", 80, "Behavior is almost certainly automated", "behavior.bot_score", input.behavior.bot_score, thresholds.bot_score_block) if {
	input.behavior.bot_score >= thresholds.bot_score_block
	is_number(input.behavior.bot_score)
}

# Degraded signals.

reasons contains lib.reason_at("SIGNALS_DEGRADED", "review", 10, "Some risk signals were unavailable", "signals.unavailable", input.signals.unavailable, null) if {
	some source in input.signals.unavailable
	source in {"verification", "velocity", "lists", "device"}
}

# Helpers. They are positive tests, negated where used: in Rego a negated builtin call
# (not x > 1, not x in s) on a missing input field is undefined rather than true, while a
# negated equality or helper rule (not x == 1, not helper) is true.

device_unavailable if "device" in input.signals.unavailable

verification_unavailable if "verification" in input.signals.unavailable

over_unverified_limit if {
	input.context.amount > thresholds.max_unverified_amount
	is_number(input.context.amount)
}

# verification_status is the latest verification status, "none" when absent or empty.
default verification_status := "none"

verification_status := s if {
	s := input.signals.verification.status
	s != ""
}
