package providers

import "log/slog"

// LogValue implements slog.LogValuer: an event logs its id, type, the vendor's session
// reference, the mapped status and time; never the user id it names.
func (e Event) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", e.ID), slog.String("type", e.Type), slog.String("provider_ref", e.ProviderRef),
		slog.String("status", e.Status), slog.Time("occurred_at", e.OccurredAt),
	)
}
