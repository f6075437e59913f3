package engine

import (
	"log/slog"
	"slices"
)

// LogValue implements slog.LogValuer. The input holds what the caller posted (emails,
// names, IP addresses): a log shows the action, which top-level fields were present, and
// the unavailable signal sources, never a value.
func (in *Input) LogValue() slog.Value {
	keys := func(m map[string]any) []string {
		ks := make([]string, 0, len(m))
		for k := range m {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}
	return slog.GroupValue(
		slog.String("action", in.Action),
		slog.Any("subject_fields", keys(in.Subject)), slog.Any("context_fields", keys(in.Context)),
		slog.Any("signals_unavailable", in.Signals.Unavailable),
	)
}
