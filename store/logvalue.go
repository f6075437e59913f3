package store

import "log/slog"

// The records below carry personal data or lead to it (user ids, the decision's input
// snapshot, a provider's reference). Logged through slog, they show ids, hashes and
// statuses only, whatever the handler.

// LogValue implements slog.LogValuer: id, action, outcome and the subject as SubjectRef.
func (r DecisionRecord) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", r.ID), slog.String("action", r.Action), slog.String("outcome", r.Outcome),
		slog.String("subject_ref", SubjectRef(r.SubjectID)), slog.String("policy_hash", r.PolicyHash),
	)
}

// LogValue implements slog.LogValuer: id, provider, status and the user as SubjectRef; the
// provider's reference, evidence and consent are left out.
func (v Verification) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", v.ID), slog.String("provider", v.Provider), slog.String("status", v.Status),
		slog.String("user_ref", SubjectRef(v.UserID)), slog.Int("evidence", len(v.Evidence)),
	)
}

// LogValue implements slog.LogValuer: kind, id, status and the user as SubjectRef.
func (it ReviewItem) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("kind", it.Kind), slog.String("id", it.ID), slog.String("status", it.Status),
		slog.String("user_ref", SubjectRef(it.UserID)),
	)
}

// LogValue implements slog.LogValuer: decision id and label; tags are free text.
func (l OutcomeLabel) LogValue() slog.Value {
	return slog.GroupValue(slog.String("decision_id", l.DecisionID), slog.String("label", l.Label), slog.Int("tags", len(l.Tags)))
}

// LogValue implements slog.LogValuer: id, provider and when; never the ciphertext.
func (p RawPayload) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", p.ID), slog.String("provider", p.Provider), slog.Int("bytes", len(p.Ciphertext)))
}
