# METADATA
# title: Onboarding (KYC) risk policy
# description: |
#   Account opening. Nobody is onboarded without an approved identity verification:
#   - no verification or one still being captured asks for a document (VERIFICATION_REQUIRED);
#     a provider asking for resubmission or an expired session asks for a new one;
#   - a submitted or pending-review verification, and any status this policy does not know,
#     go to review; a rejected one blocks.
#   Around it: deny lists (user, device, IP, country: sanctioned or not served) block;
#   device farms (one device, many users), signup bursts from one IP, disposable email
#   domains (the operator-maintained custom list "disposable_email") and emulators go to
#   review; an unverified email asks for a one-time code.
#   When any signal source is unavailable the policy reports SIGNALS_DEGRADED (review) and
#   does not infer anything from the missing source.
#   Thresholds are data: data.thresholds.onboarding overrides default_thresholds key by key.
#   max_* thresholds fire above the limit.
# custom:
#   version: onboarding-2026.11.1
#   fail_mode: review
package verdict.onboarding

import data.verdict.lib

default_thresholds := {
	"max_device_users_24h": 2, # distinct users seen on one device in 24 h: above is a device farm
	"max_ip_signups_24h": 10, # onboarding requests from one IP in 24 h
	"max_verification_age_days": 365, # an approval older than this is stale: review
}

# thresholds are the defaults overridden key by key by data.thresholds.onboarding. The
# comprehension is {} when no override is loaded; object.get(data, ...) would make this
# rule depend on all of data, itself included, which OPA rejects as recursive.
thresholds := object.union(default_thresholds, {k: v | some k, v in data.thresholds.onboarding})

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

# Identity verification, by canonical session status.

reasons contains lib.reason_at("VERIFICATION_STALE", "review", 20, "Identity verification is too old to rely on", "verification.age_days", input.signals.verification.age_days, thresholds.max_verification_age_days) if {
	verification_status == "approved"
	input.signals.verification.age_days > thresholds.max_verification_age_days
}

reasons contains lib.step_up_at("VERIFICATION_REQUIRED", 10, "Identity verification has not been completed", "document", "verification.status", verification_status, null) if {
	verification_status in {"none", "initiated", "capturing"}
}

reasons contains lib.reason_at("VERIFICATION_PENDING", "review", 20, "Identity verification is awaiting a decision", "verification.status", verification_status, null) if {
	verification_status in {"submitted", "pending_review"}
}

reasons contains lib.step_up_at("VERIFICATION_RESUBMIT", 20, "Identity provider asked for a new submission", "document", "verification.status", verification_status, null) if {
	verification_status == "needs_resubmission"
}

reasons contains lib.step_up_at("VERIFICATION_EXPIRED", 20, "Identity verification expired before completion", "document", "verification.status", verification_status, null) if {
	verification_status == "expired"
}

reasons contains lib.reason_at("VERIFICATION_REJECTED", "block", 100, "Identity verification was rejected", "verification.status", verification_status, null) if {
	verification_status == "rejected"
}

reasons contains lib.reason_at("VERIFICATION_STATUS_UNKNOWN", "review", 20, "Identity verification status is not recognised", "verification.status", status, null) if {
	status := verification_status
	not status in known_statuses
}

# Abuse at scale.

reasons contains lib.reason_at("DEVICE_SHARED", "review", 40, "Device used by many different users in 24 hours", "velocity.device.distinct_users_24h", n, thresholds.max_device_users_24h) if {
	n := input.signals.velocity.device.distinct_users_24h
	n > thresholds.max_device_users_24h
}

reasons contains lib.reason_at("IP_SIGNUP_VELOCITY", "review", 30, "Many signups from this IP in 24 hours", "velocity.ip.count_24h", n, thresholds.max_ip_signups_24h) if {
	n := input.signals.velocity.ip.count_24h
	n > thresholds.max_ip_signups_24h
}

reasons contains lib.reason_at("DEVICE_EMULATOR", "review", 40, "Request comes from an emulator", "device.emulator", true, null) if {
	input.device.emulator == true
}

# Email.

reasons contains lib.reason_at("EMAIL_DISPOSABLE", "review", 40, "Email address uses a disposable domain", "lists.disposable_email", true, null) if {
	input.signals.lists.disposable_email == true
}

reasons contains lib.step_up_at("EMAIL_UNVERIFIED", 10, "Email address is not verified", "otp", "subject.email_verified", false, null) if {
	input.subject.email_verified == false
}

# Degraded signals.

reasons contains lib.reason_at("SIGNALS_DEGRADED", "review", 10, "Some risk signals were unavailable", "signals.unavailable", input.signals.unavailable, null) if {
	some source in {"verification", "velocity", "lists", "device"}
	source in unavailable
}

known_statuses := {
	"none", "initiated", "capturing", "submitted", "pending_review",
	"approved", "rejected", "needs_resubmission", "expired",
}

# verification_status is the subject's latest verification status, "none" when absent or
# empty, and undefined when the verification source was unavailable (so that no
# verification rule guesses; SIGNALS_DEGRADED reports it instead).
verification_status := s if {
	not "verification" in unavailable
	s := object.get(input, ["signals", "verification", "status"], "none")
	s != ""
} else := "none" if {
	not "verification" in unavailable
}

unavailable := {s | some s in input.signals.unavailable}
