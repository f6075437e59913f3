package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/verdict-engine/verdict/store"
)

// AuditEvents implements store.AuditLog: up to limit events with Seq > after, in order
// (none when limit < 1). The first event's PrevHash is nil.
func (s *Store) AuditEvents(ctx context.Context, after int64, limit int) ([]store.AuditEvent, error) {
	if limit < 1 {
		return nil, nil
	}
	rows, err := s.r.QueryContext(ctx, `SELECT seq, time, type, actor, correlation_id, subject_ref,
		payload, prev_hash, hash FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, classify(ctx, "read audit events", err)
	}
	defer rows.Close()
	out := make([]store.AuditEvent, 0, min(limit, 1024))
	for rows.Next() {
		var (
			ev      store.AuditEvent
			at      int64
			payload []byte
		)
		if err := rows.Scan(&ev.Seq, &at, &ev.Type, &ev.Actor, &ev.CorrelationID, &ev.SubjectRef,
			&payload, &ev.PrevHash, &ev.Hash); err != nil {
			return nil, classify(ctx, "read audit events", err)
		}
		ev.Time, ev.Payload = fromMicros(at), payload
		if len(ev.PrevHash) == 0 {
			ev.PrevHash = nil
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(ctx, "read audit events", err)
	}
	return out, nil
}

// AuditHead implements store.AuditLog: the last event's sequence and hash, or (0, nil).
func (s *Store) AuditHead(ctx context.Context) (int64, []byte, error) {
	var (
		seq  int64
		hash []byte
	)
	err := s.r.QueryRowContext(ctx, `SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, classify(ctx, "read audit head", err)
	}
	return seq, hash, nil
}
