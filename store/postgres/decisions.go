package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/verdict-engine/verdict/store"
)

// WriteDecisions implements store.DecisionWriter in one transaction whatever the batch
// size: in one round trip when the audit head is where this process last saw it and every
// key is new (writeDecisionsAtKnownHead), else in three: it locks the audit head and claims
// the batch's idempotency keys (INSERT ... ON CONFLICT DO NOTHING RETURNING), inserts the
// decisions and their audit events with one multi-row statement each, and commits. A
// record whose idempotency key is already stored, or repeated earlier in recs, gets
// store.ErrDuplicateIdempotencyKey in its slot and leaves no trace: no decision row, no
// audit event. A record that fails store.ValidateDecision gets that error (wrapping
// store.ErrInvalidRecord). Every other record is written with one decision.created audit
// event; a zero CreatedAt is set to the store's clock. Times are kept to the microsecond.
// A non-nil error (wrapping store.ErrUnavailable for connection failures and timeouts)
// means nothing was written.
func (s *Store) WriteDecisions(ctx context.Context, recs []store.DecisionRecord) ([]error, error) {
	if len(recs) == 0 {
		return []error{}, nil
	}
	// Everything that does not depend on the chain head is done before locking it.
	now := s.now()
	recs, events, results, err := store.PrepareDecisions(recs, now)
	if err != nil {
		return nil, fmt.Errorf("write decisions: %w", err)
	}

	// Claim the keys of the records still to write (repeats in the batch are marked).
	var keys, keyHashes, keyIDs []string
	for i, r := range recs {
		if results[i] != nil || r.IdempotencyKey == "" {
			continue
		}
		keys, keyHashes, keyIDs = append(keys, r.IdempotencyKey), append(keyHashes, r.RequestHash), append(keyIDs, r.ID)
	}
	// New subject keys travel with their records: one per subject, inserted unless the
	// subject has one already.
	newKeys := map[string]*store.SubjectKey{}
	var kUsers, kKEKs []string
	var kWrapped [][]byte
	var kAt []time.Time
	for i, r := range recs {
		if results[i] != nil || r.NewSubjectKey == nil {
			continue
		}
		if _, seen := newKeys[r.SubjectID]; seen {
			continue
		}
		k := r.NewSubjectKey
		newKeys[r.SubjectID] = k
		kUsers, kKEKs, kWrapped, kAt = append(kUsers, k.UserID), append(kKEKs, k.KEKID), append(kWrapped, k.Wrapped), append(kAt, k.CreatedAt)
	}
	if ok, err := s.writeDecisionsAtKnownHead(ctx, now, recs, events, results, newKeys, keys, keyHashes, keyIDs,
		kUsers, kKEKs, kWrapped, kAt); err != nil {
		return nil, classify(ctx, "write decisions", err)
	} else if ok {
		return results, nil
	}

	s.lockedCommits.Add(1)
	keysStored := make(map[string]struct{}, len(kUsers))
	claimed := make(map[string]struct{}, len(keys))
	w, err := s.begin(ctx, now, func(b *pgx.Batch) {
		if len(kUsers) > 0 {
			b.Queue(`INSERT INTO subject_keys (user_id, kek_id, wrapped, created_at)
				SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::timestamptz[])
				ON CONFLICT (user_id) DO NOTHING RETURNING user_id`, kUsers, kKEKs, kWrapped, kAt).Query(func(rows pgx.Rows) error {
				for rows.Next() {
					var u string
					if err := rows.Scan(&u); err != nil {
						return err
					}
					keysStored[u] = struct{}{}
				}
				return rows.Err()
			})
		}
		if len(keys) == 0 {
			return
		}
		b.Queue(`INSERT INTO idempotency (key, request_hash, decision_id)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
			ON CONFLICT (key) DO NOTHING RETURNING key`, keys, keyHashes, keyIDs).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var k string
				if err := rows.Scan(&k); err != nil {
					return err
				}
				claimed[k] = struct{}{}
			}
			return rows.Err()
		})
	})
	if err != nil {
		return nil, classify(ctx, "write decisions", err)
	}
	defer w.rollback(ctx)

	var d decisionColumns
	var unclaim []string // idempotency keys claimed for records refused for their subject key
	for i, r := range recs {
		if results[i] != nil {
			continue
		}
		if k := r.NewSubjectKey; k != nil {
			_, stored := keysStored[r.SubjectID]
			if !stored || !bytes.Equal(newKeys[r.SubjectID].Wrapped, k.Wrapped) {
				results[i] = store.ErrSubjectKeyExists
				if _, ok := claimed[r.IdempotencyKey]; ok && r.IdempotencyKey != "" {
					unclaim = append(unclaim, r.IdempotencyKey)
				}
				continue
			}
		}
		if r.IdempotencyKey != "" {
			if _, ok := claimed[r.IdempotencyKey]; !ok {
				results[i] = store.ErrDuplicateIdempotencyKey
				continue
			}
		}
		d.add(r)
		if err := w.append(events[i]); err != nil {
			return nil, fmt.Errorf("write decisions: %w", err)
		}
	}
	err = w.commit(ctx, func(b *pgx.Batch) {
		if len(unclaim) > 0 {
			b.Queue(`DELETE FROM idempotency WHERE key = ANY($1)`, unclaim)
		}
		if len(d.id) == 0 {
			return
		}
		queueDecisionInsert(b, &d)
	})
	if err != nil {
		return nil, classify(ctx, "write decisions", err)
	}
	return results, nil
}

// errExpectation is the SQLSTATE verdict_expect raises (migrations/0008_expect.sql), and
// headMoved its message when the audit head was not where this process last saw it.
const (
	errExpectation = "VD001"
	headMoved      = "audit head moved"
)

// writeDecisionsAtKnownHead writes the records still to write (results[i] == nil) in one
// round trip, as one implicit transaction, assuming what holds almost always for a single
// writer: the audit head is where this process last saw it, no other writer appends
// meanwhile, and every idempotency key and new subject key is new. The database checks each
// assumption inside the transaction (verdict_expect); if one does not hold, nothing is
// written and it returns false, nil, and the caller takes the locking path, which handles
// those cases record by record. It returns false at once when the head is not known yet or a
// subject has two different new keys in the batch. The head is updated first, so the row
// lock serializes it with other writers: one that commits first makes the guard fail.
func (s *Store) writeDecisionsAtKnownHead(ctx context.Context, now time.Time, recs []store.DecisionRecord,
	events []store.AuditEvent, results []error, newKeys map[string]*store.SubjectKey,
	keys, keyHashes, keyIDs, kUsers, kKEKs []string, kWrapped [][]byte, kAt []time.Time,
) (bool, error) {
	seq, hash, known := s.head.get()
	if !known || s.fastSkip.Add(-1) >= 0 {
		return false, nil
	}
	for i, r := range recs {
		if results[i] == nil && r.NewSubjectKey != nil && !bytes.Equal(newKeys[r.SubjectID].Wrapped, r.NewSubjectKey.Wrapped) {
			return false, nil
		}
	}
	if err := s.ensurePartitions(ctx, now); err != nil {
		return false, err
	}
	// Link the events onto the remembered head, as the locking path does onto the locked one.
	w := &writeTx{s: s, seq: seq, hash: hash}
	var d decisionColumns
	for i, r := range recs {
		if results[i] != nil {
			continue
		}
		if err := w.append(events[i]); err != nil {
			return false, fmt.Errorf("write decisions: %w", err)
		}
		d.add(r)
	}
	if len(w.events) == 0 {
		return true, nil // every record was refused before reaching the database
	}
	b := &pgx.Batch{}
	b.Queue(`WITH h AS (UPDATE audit_head SET seq = $3, hash = $4 WHERE seq = $1 AND hash = $2 RETURNING 1)
		SELECT verdict_expect(EXISTS (SELECT 1 FROM h), '`+headMoved+`')`, seq, hash, w.seq, w.hash)
	if len(kUsers) > 0 {
		b.Queue(`WITH k AS (INSERT INTO subject_keys (user_id, kek_id, wrapped, created_at)
			SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::timestamptz[])
			ON CONFLICT (user_id) DO NOTHING RETURNING 1)
			SELECT verdict_expect((SELECT count(*) FROM k) = $5, 'subject key exists')`,
			kUsers, kKEKs, kWrapped, kAt, int64(len(kUsers)))
	}
	if len(keys) > 0 {
		b.Queue(`WITH k AS (INSERT INTO idempotency (key, request_hash, decision_id)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
			ON CONFLICT (key) DO NOTHING RETURNING 1)
			SELECT verdict_expect((SELECT count(*) FROM k) = $4, 'idempotency key taken')`,
			keys, keyHashes, keyIDs, int64(len(keys)))
	}
	queueDecisionInsert(b, &d)
	queueAuditEvents(b, w.events)
	// No BEGIN and COMMIT: a batch runs as one implicit transaction, committed at its end
	// or rolled back whole by the first error.
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == errExpectation {
			if pgErr.Message == headMoved {
				// Another writer appends too: skip the attempt for the next 1, 2, 4 ...
				// batches, so that replicas sharing the database mostly pay the locking
				// path only, plus an occasional probe.
				s.fastMisses.Add(1)
				b := min(max(2*s.fastBackoff.Load(), 1), maxFastBackoff)
				s.fastBackoff.Store(b)
				s.fastSkip.Store(b)
			}
			return false, nil
		}
		return false, err
	}
	s.head.saw(w.seq, w.hash)
	s.fastCommits.Add(1)
	s.fastBackoff.Store(0)
	return true, nil
}

// queueDecisionInsert queues one multi-row insert of the decisions in d.
func queueDecisionInsert(b *pgx.Batch, d *decisionColumns) {
	b.Queue(`INSERT INTO decisions (id, action, subject_id, outcome, score, reason_codes, policy_version,
		policy_hash, fail_mode, input, response, idempotency_key, request_hash, created_at, actor, correlation_id, pii)
		SELECT id, action, subject_id, outcome, score, reason_codes::jsonb, policy_version, policy_hash,
			fail_mode, input::json, response::json, idempotency_key, request_hash, created_at, actor, correlation_id, pii
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::text[], $7::text[],
			$8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::timestamptz[],
			$15::text[], $16::text[], $17::bytea[])
			AS d(id, action, subject_id, outcome, score, reason_codes, policy_version, policy_hash, fail_mode,
				input, response, idempotency_key, request_hash, created_at, actor, correlation_id, pii)`,
		d.id, d.action, d.subjectID, d.outcome, d.score, d.reasonCodes, d.policyVersion, d.policyHash,
		d.failMode, d.input, d.response, d.idempotencyKey, d.requestHash, d.createdAt, d.actor, d.correlationID, d.pii)
}

// decisionColumns holds a batch of decisions column by column, for one unnest insert.
type decisionColumns struct {
	id, action, subjectID, outcome                   []string
	score                                            []float64
	reasonCodes, policyVersion, policyHash, failMode []string
	input, response, idempotencyKey, requestHash     []string
	createdAt                                        []time.Time
	actor, correlationID                             []string
	pii                                              [][]byte
}

func (d *decisionColumns) add(r store.DecisionRecord) {
	d.id = append(d.id, r.ID)
	d.action = append(d.action, r.Action)
	d.subjectID = append(d.subjectID, r.SubjectID)
	d.outcome = append(d.outcome, r.Outcome)
	d.score = append(d.score, r.Score)
	d.reasonCodes = append(d.reasonCodes, reasonCodesJSON(r.ReasonCodes))
	d.policyVersion = append(d.policyVersion, r.PolicyVersion)
	d.policyHash = append(d.policyHash, r.PolicyHash)
	d.failMode = append(d.failMode, r.FailMode)
	d.input = append(d.input, string(r.Input))
	d.response = append(d.response, string(r.Response))
	d.idempotencyKey = append(d.idempotencyKey, r.IdempotencyKey)
	d.requestHash = append(d.requestHash, r.RequestHash)
	d.createdAt = append(d.createdAt, r.CreatedAt)
	d.actor = append(d.actor, r.Actor)
	d.correlationID = append(d.correlationID, r.CorrelationID)
	d.pii = append(d.pii, r.PII)
}

// GetDecision implements store.DecisionReader. It returns an error wrapping
// store.ErrNotFound when no decision has the id.
func (s *Store) GetDecision(ctx context.Context, id string) (store.DecisionRecord, error) {
	var (
		r                  store.DecisionRecord
		codes, input, resp []byte
	)
	err := s.pool.QueryRow(ctx, `SELECT id, action, subject_id, outcome, score, reason_codes::text,
		policy_version, policy_hash, fail_mode, input::text, response::text, idempotency_key, request_hash,
		created_at, actor, correlation_id, pii FROM decisions WHERE id = $1`, id).Scan(
		&r.ID, &r.Action, &r.SubjectID, &r.Outcome, &r.Score, &codes, &r.PolicyVersion, &r.PolicyHash,
		&r.FailMode, &input, &resp, &r.IdempotencyKey, &r.RequestHash, &r.CreatedAt, &r.Actor, &r.CorrelationID, &r.PII)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.DecisionRecord{}, fmt.Errorf("get decision %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.DecisionRecord{}, classify(ctx, fmt.Sprintf("get decision %q", id), err)
	}
	if err := json.Unmarshal(codes, &r.ReasonCodes); err != nil {
		return store.DecisionRecord{}, fmt.Errorf("get decision %q: decode reason codes: %w", id, err)
	}
	r.Input, r.Response, r.CreatedAt = input, resp, r.CreatedAt.UTC()
	return r, nil
}

// LookupIdempotency implements store.DecisionReader. It returns an error wrapping
// store.ErrNotFound when the key is not stored.
func (s *Store) LookupIdempotency(ctx context.Context, key string) (store.Idempotency, error) {
	var idem store.Idempotency
	err := s.pool.QueryRow(ctx, `SELECT key, request_hash, decision_id FROM idempotency WHERE key = $1`, key).
		Scan(&idem.Key, &idem.RequestHash, &idem.DecisionID)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Idempotency{}, fmt.Errorf("lookup idempotency key: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Idempotency{}, classify(ctx, "lookup idempotency key", err)
	}
	return idem, nil
}

// reasonCodesJSON encodes reason codes as a JSON array, [] for none.
func reasonCodesJSON(codes []string) string {
	if len(codes) == 0 {
		return "[]"
	}
	// Encoding a slice of strings cannot fail.
	b, _ := json.Marshal(codes)
	return string(b)
}
