package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/verdict-engine/verdict/store"
)

// AuditEvents implements store.AuditLog: up to limit events with Seq > after, in order
// (none when limit < 1). The first event's PrevHash is nil.
func (s *Store) AuditEvents(ctx context.Context, after int64, limit int) ([]store.AuditEvent, error) {
	if limit < 1 {
		return nil, nil
	}
	// The key is (seq, time), as the table is partitioned by time, so the database cannot
	// keep seq unique: a row inserted with a sequence number already used is possible. A
	// page cut after limit rows could leave such a twin out (the next page starts after
	// its seq) and the verifier would never see it; so a page holds limit sequence numbers
	// and every row of each, twins included.
	rows, err := s.pool.Query(ctx, `SELECT seq, time, type, actor, correlation_id, subject_ref, payload::text,
		prev_hash, hash FROM audit_events
		WHERE seq > $1 AND seq <= (SELECT max(seq) FROM (SELECT seq FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2) page)
		ORDER BY seq, time, hash`, after, limit)
	if err != nil {
		return nil, classify(ctx, "read audit events", err)
	}
	evs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.AuditEvent, error) {
		var (
			ev      store.AuditEvent
			payload []byte
		)
		err := row.Scan(&ev.Seq, &ev.Time, &ev.Type, &ev.Actor, &ev.CorrelationID, &ev.SubjectRef, &payload,
			&ev.PrevHash, &ev.Hash)
		ev.Time, ev.Payload = ev.Time.UTC(), payload
		if len(ev.PrevHash) == 0 {
			ev.PrevHash = nil
		}
		return ev, err
	})
	if err != nil {
		return nil, classify(ctx, "read audit events", err)
	}
	return evs, nil
}

// AuditHead implements store.AuditLog: the sequence and hash recorded in audit_head, which
// every append moves in the same transaction; (0, nil) for an empty log. VerifyChain checks
// it against the events.
func (s *Store) AuditHead(ctx context.Context) (int64, []byte, error) {
	var (
		seq  int64
		hash []byte
	)
	if err := s.pool.QueryRow(ctx, `SELECT seq, hash FROM audit_head`).Scan(&seq, &hash); err != nil {
		return 0, nil, classify(ctx, "read audit head", err)
	}
	if len(hash) == 0 {
		hash = nil
	}
	return seq, hash, nil
}
