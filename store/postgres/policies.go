package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/verdict-engine/verdict/store"
)

var _ store.PolicyStore = (*Store)(nil)

// policyTx runs fn in a transaction holding the audit head (which serializes every policy
// change across replicas, so the reads fn makes cannot race), then commits what fn queued
// and appended. Errors are classified once, here.
func (s *Store) policyTx(ctx context.Context, op string, now time.Time, fn func(w *writeTx) error) error {
	w, err := s.begin(ctx, now, nil)
	if err != nil {
		return classify(ctx, op, err)
	}
	defer w.rollback(ctx)
	if err := fn(w); err != nil {
		return classify(ctx, op, err)
	}
	if err := w.commit(ctx, nil); err != nil {
		return classify(ctx, op, err)
	}
	return nil
}

// PublishPolicy implements store.PolicyStore: it stores v and its files and appends a
// policy.published audit event, in one transaction. A zero CreatedAt is set to the store's
// clock. Publishing a hash already stored returns created=false and changes nothing (the
// stored label, author and files are kept). It returns an error wrapping
// store.ErrInvalidRecord for a version store.ValidatePolicyVersion refuses. The store does
// not recompute the hash: the caller computes it over the files.
func (s *Store) PublishPolicy(ctx context.Context, v store.PolicyVersion, correlationID string) (bool, error) {
	const op = "publish policy"
	if err := store.ValidatePolicyVersion(v); err != nil {
		return false, fmt.Errorf("%s: %w", op, err)
	}
	now := s.now()
	if v.CreatedAt.IsZero() {
		v.CreatedAt = now
	}
	paths := make([]string, 0, len(v.Files))
	for p := range v.Files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	contents := make([][]byte, len(paths))
	for i, p := range paths {
		contents[i] = v.Files[p]
		if contents[i] == nil {
			contents[i] = []byte{}
		}
	}
	var created bool
	err := s.policyTx(ctx, op, now, func(w *writeTx) error {
		tag, err := w.tx.Exec(ctx, `INSERT INTO policy_versions (hash, label, author, changelog, created_at)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (hash) DO NOTHING`, v.Hash, v.Label, v.Author, v.Changelog, v.CreatedAt)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		created = true
		if _, err := w.tx.Exec(ctx, `INSERT INTO policy_files (hash, path, content)
			SELECT $1, path, content FROM unnest($2::text[], $3::bytea[]) AS f(path, content)`,
			v.Hash, paths, contents); err != nil {
			return err
		}
		ev, err := store.PolicyPublishedEvent(v, correlationID, now)
		if err != nil {
			return err
		}
		return w.append(ev)
	})
	if err != nil {
		return false, err
	}
	return created, nil
}

// PolicyVersion implements store.PolicyStore: the version with every file, or an error
// wrapping store.ErrNotFound.
func (s *Store) PolicyVersion(ctx context.Context, hash string) (store.PolicyVersion, error) {
	const op = "policy version"
	var (
		v     store.PolicyVersion
		found bool
	)
	// One statement, so the version and its files are one snapshot.
	rows, err := s.pool.Query(ctx, `SELECT v.hash, v.label, v.author, v.changelog, v.created_at, f.path, f.content
		FROM policy_versions v LEFT JOIN policy_files f ON f.hash = v.hash
		WHERE v.hash = $1 ORDER BY f.path`, hash)
	if err != nil {
		return store.PolicyVersion{}, classify(ctx, op, err)
	}
	defer rows.Close()
	v.Files = map[string][]byte{}
	for rows.Next() {
		var (
			p       *string
			content []byte
		)
		if err := rows.Scan(&v.Hash, &v.Label, &v.Author, &v.Changelog, &v.CreatedAt, &p, &content); err != nil {
			return store.PolicyVersion{}, classify(ctx, op, err)
		}
		found = true
		if p != nil {
			if content == nil {
				content = []byte{}
			}
			v.Files[*p] = content
		}
	}
	if err := rows.Err(); err != nil {
		return store.PolicyVersion{}, classify(ctx, op, err)
	}
	if !found {
		return store.PolicyVersion{}, fmt.Errorf("%s %q: %w", op, hash, store.ErrNotFound)
	}
	v.CreatedAt = v.CreatedAt.UTC()
	return v, nil
}

// ListPolicyVersions implements store.PolicyStore: every version without its files, newest
// CreatedAt first, the later published first among equal times.
func (s *Store) ListPolicyVersions(ctx context.Context) ([]store.PolicyVersion, error) {
	const op = "list policy versions"
	rows, err := s.pool.Query(ctx, `SELECT hash, label, author, changelog, created_at FROM policy_versions
		ORDER BY created_at DESC, seq DESC`)
	if err != nil {
		return nil, classify(ctx, op, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.PolicyVersion, error) {
		var v store.PolicyVersion
		err := row.Scan(&v.Hash, &v.Label, &v.Author, &v.Changelog, &v.CreatedAt)
		v.CreatedAt = v.CreatedAt.UTC()
		return v, err
	})
	if err != nil {
		return nil, classify(ctx, op, err)
	}
	return out, nil
}

const activationColumns = `seq, id, action, hash, previous, actor, approver, status, at`

func scanActivation(row pgx.Row) (int64, store.PolicyActivation, error) {
	var (
		seq int64
		a   store.PolicyActivation
	)
	if err := row.Scan(&seq, &a.ID, &a.Action, &a.Hash, &a.Previous, &a.Actor, &a.Approver, &a.Status, &a.At); err != nil {
		return 0, store.PolicyActivation{}, err
	}
	a.At = a.At.UTC()
	return seq, a, nil
}

// ActivatePolicy implements store.PolicyStore. Without approval it supersedes the action's
// active activation, makes a.Hash live, bumps the policy generation and appends a
// policy.activated event; with approval it only records a pending activation and appends
// a policy.activation_requested event. An empty a.ID gets a new UUIDv7, a zero a.At the
// store's clock; a.Previous, a.Approver and a.Status are set by the store. It returns an
// error wrapping store.ErrNotFound for an unpublished version and store.ErrInvalidRecord
// for an activation store.ValidatePolicyActivation refuses.
func (s *Store) ActivatePolicy(ctx context.Context, a store.PolicyActivation, requireApproval bool, correlationID string) (store.PolicyActivation, error) {
	const op = "activate policy"
	a.Approver = ""
	if err := store.ValidatePolicyActivation(a); err != nil {
		return store.PolicyActivation{}, fmt.Errorf("%s: %w", op, err)
	}
	if a.ID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return store.PolicyActivation{}, fmt.Errorf("%s: %w", op, err)
		}
		a.ID = id.String()
	}
	now := s.now()
	if a.At.IsZero() {
		a.At = now
	}
	a.At = store.UTCMicros(a.At)
	err := s.policyTx(ctx, op, now, func(w *writeTx) error {
		if err := versionExists(ctx, w.tx, a.Hash); err != nil {
			return err
		}
		prev, err := liveHash(ctx, w.tx, a.Action)
		if err != nil {
			return err
		}
		a.Previous = prev
		if requireApproval {
			a.Status = store.ActivationPending
			if err := insertActivation(ctx, w.tx, a); err != nil {
				return err
			}
			ev, err := store.PolicyActivationRequestedEvent(a, correlationID, now)
			if err != nil {
				return err
			}
			return w.append(ev)
		}
		a.Status = store.ActivationActive
		if err := supersedeActive(ctx, w.tx, a.Action); err != nil {
			return err
		}
		if err := insertActivation(ctx, w.tx, a); err != nil {
			return err
		}
		return makeLive(ctx, w, a, correlationID, now)
	})
	if err != nil {
		return store.PolicyActivation{}, err
	}
	return a, nil
}

// ApproveActivation implements store.PolicyStore: it makes the pending activation id live
// as ActivatePolicy does, with approver as Approver, At the store's clock and Previous the
// version live at approval. It returns an error wrapping store.ErrNotFound for an unknown
// or non-pending id, store.ErrConflict when approver is the requester, and
// store.ErrInvalidRecord for an empty approver.
func (s *Store) ApproveActivation(ctx context.Context, id, approver, correlationID string) (store.PolicyActivation, error) {
	const op = "approve policy activation"
	if approver == "" || !store.ValidText(approver) || !store.ValidText(id) {
		return store.PolicyActivation{}, fmt.Errorf("%s: %w", op, store.InvalidRecordf("approver is required"))
	}
	now := s.now()
	var a store.PolicyActivation
	err := s.policyTx(ctx, op, now, func(w *writeTx) error {
		seq, got, err := scanActivation(w.tx.QueryRow(ctx, `SELECT `+activationColumns+` FROM policy_activations
			WHERE id = $1`, id))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("activation %q: %w", id, store.ErrNotFound)
		case err != nil:
			return err
		case got.Status != store.ActivationPending:
			return fmt.Errorf("activation %q is %s, not pending: %w", id, got.Status, store.ErrNotFound)
		case strings.EqualFold(strings.TrimSpace(got.Actor), strings.TrimSpace(approver)): // "DANA" is dana
			return fmt.Errorf("activation %q: %s requested it and cannot approve it: %w", id, approver, store.ErrConflict)
		}
		a = got
		prev, err := liveHash(ctx, w.tx, a.Action)
		if err != nil {
			return err
		}
		if err := store.CheckStillPrevious(a, prev); err != nil {
			return err
		}
		a.Previous, a.Approver, a.Status, a.At = prev, approver, store.ActivationActive, store.UTCMicros(now)
		if err := supersedeActive(ctx, w.tx, a.Action); err != nil {
			return err
		}
		if _, err := w.tx.Exec(ctx, `UPDATE policy_activations SET previous = $1, approver = $2, status = $3, at = $4
			WHERE seq = $5`, a.Previous, a.Approver, a.Status, a.At, seq); err != nil {
			return err
		}
		return makeLive(ctx, w, a, correlationID, now)
	})
	if err != nil {
		return store.PolicyActivation{}, err
	}
	return a, nil
}

// RollbackPolicy implements store.PolicyStore: it marks the action's active activation
// rolled_back and records a new active activation (actor actor) of its Previous version:
// that version is live again, or the default bundle (Hash "", the live row removed) when
// Previous is "". The new activation's Previous is the one the restored version had when
// it was last live, so repeated rollbacks walk back the history. It bumps the policy
// generation and appends a policy.rolled_back event. It returns an error wrapping
// store.ErrNotFound when the action runs the default bundle.
func (s *Store) RollbackPolicy(ctx context.Context, action, actor, correlationID string) (store.PolicyActivation, error) {
	const op = "roll back policy"
	if action == "" || actor == "" || !store.ValidText(action) || !store.ValidText(actor) {
		return store.PolicyActivation{}, fmt.Errorf("%s: %w", op, store.InvalidRecordf("action and actor are required"))
	}
	now := s.now()
	var a store.PolicyActivation
	err := s.policyTx(ctx, op, now, func(w *writeTx) error {
		seq, cur, err := scanActivation(w.tx.QueryRow(ctx, `SELECT `+activationColumns+` FROM policy_activations
			WHERE action = $1 AND status = 'active' AND hash <> ''`, action))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("action %q runs the default bundle: nothing to roll back: %w", action, store.ErrNotFound)
		case err != nil:
			return err
		}
		// The restored version's own predecessor, from the history replayed.
		var restoredPrev string
		if cur.Previous != "" {
			rows, err := w.tx.Query(ctx, `SELECT `+activationColumns+` FROM policy_activations
				WHERE action = $1 AND status <> $2 ORDER BY at, seq`, action, store.ActivationPending)
			if err != nil {
				return err
			}
			history, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.PolicyActivation, error) {
				_, a, err := scanActivation(row)
				return a, err
			})
			if err != nil {
				return err
			}
			restoredPrev = store.RestoredPrevious(history)
		}
		id, err := uuid.NewV7()
		if err != nil {
			return err
		}
		a = store.PolicyActivation{ID: id.String(), Action: action, Hash: cur.Previous, Previous: restoredPrev,
			Actor: actor, Status: store.ActivationActive, At: store.UTCMicros(now)}
		if _, err := w.tx.Exec(ctx, `UPDATE policy_activations SET status = $1 WHERE seq = $2`,
			store.ActivationRolledBack, seq); err != nil {
			return err
		}
		if err := insertActivation(ctx, w.tx, a); err != nil {
			return err
		}
		if err := setLive(ctx, w.tx, action, a.Hash); err != nil {
			return err
		}
		ev, err := store.PolicyRolledBackEvent(a, cur.Hash, correlationID, now)
		if err != nil {
			return err
		}
		return w.append(ev)
	})
	if err != nil {
		return store.PolicyActivation{}, err
	}
	return a, nil
}

// PolicyActivations implements store.PolicyStore: the action's activations, the most
// recently requested first.
func (s *Store) PolicyActivations(ctx context.Context, action string) ([]store.PolicyActivation, error) {
	const op = "policy activations"
	rows, err := s.pool.Query(ctx, `SELECT `+activationColumns+` FROM policy_activations
		WHERE action = $1 ORDER BY seq DESC`, action)
	if err != nil {
		return nil, classify(ctx, op, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.PolicyActivation, error) {
		_, a, err := scanActivation(row)
		return a, err
	})
	if err != nil {
		return nil, classify(ctx, op, err)
	}
	return out, nil
}

// SetShadow implements store.PolicyStore: it replaces the action's shadow versions with
// hashes (in that order, repeats dropped; none clears them), bumps the policy generation
// and appends a policy.shadow_set event. It returns an error wrapping store.ErrNotFound,
// and changes nothing, when a hash is not published.
func (s *Store) SetShadow(ctx context.Context, action string, hashes []string, actor, correlationID string) error {
	const op = "set shadow policies"
	hashes, err := shadowList(action, hashes, actor)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	now := s.now()
	return s.policyTx(ctx, op, now, func(w *writeTx) error {
		var known []string
		rows, err := w.tx.Query(ctx, `SELECT hash FROM policy_versions WHERE hash = ANY($1::text[])`, hashes)
		if err != nil {
			return err
		}
		if known, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		for _, h := range hashes {
			if !contains(known, h) {
				return fmt.Errorf("policy version %q: %w", h, store.ErrNotFound)
			}
		}
		positions := make([]int32, len(hashes))
		for i := range positions {
			positions[i] = int32(i)
		}
		if _, err := w.tx.Exec(ctx, `DELETE FROM policy_shadow WHERE action = $1`, action); err != nil {
			return err
		}
		if _, err := w.tx.Exec(ctx, `INSERT INTO policy_shadow (action, position, hash)
			SELECT $1, position, hash FROM unnest($2::integer[], $3::text[]) AS s(position, hash)`,
			action, positions, hashes); err != nil {
			return err
		}
		if err := bumpGeneration(ctx, w.tx); err != nil {
			return err
		}
		ev, err := store.PolicyShadowSetEvent(action, hashes, actor, correlationID, now)
		if err != nil {
			return err
		}
		return w.append(ev)
	})
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// shadowList validates a SetShadow call and returns hashes without repeats.
func shadowList(action string, hashes []string, actor string) ([]string, error) {
	if action == "" || !store.ValidText(action) || !store.ValidText(actor) {
		return nil, store.InvalidRecordf("shadow policies: action is required")
	}
	out := make([]string, 0, len(hashes))
	seen := map[string]bool{}
	for _, h := range hashes {
		if h == "" || !store.ValidText(h) {
			return nil, store.InvalidRecordf("shadow policies of %q: empty or invalid hash", action)
		}
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out, nil
}

// LivePolicies implements store.PolicyStore, reading the generation, live and shadow
// versions in one statement, so in one snapshot.
func (s *Store) LivePolicies(ctx context.Context) (store.LivePolicies, error) {
	const op = "live policies"
	rows, err := s.pool.Query(ctx, `SELECT 0 AS kind, '' COLLATE "C" AS action, '' COLLATE "C" AS hash, generation, 0 AS position
		FROM policy_generation
		UNION ALL SELECT 1, action, hash, 0, 0 FROM policy_live
		UNION ALL SELECT 2, action, hash, 0, position FROM policy_shadow
		ORDER BY kind, action, position`)
	if err != nil {
		return store.LivePolicies{}, classify(ctx, op, err)
	}
	defer rows.Close()
	lp := store.LivePolicies{Active: map[string]string{}, Shadow: map[string][]string{}}
	for rows.Next() {
		var (
			kind, position int32
			action, hash   string
			gen            int64
		)
		if err := rows.Scan(&kind, &action, &hash, &gen, &position); err != nil {
			return store.LivePolicies{}, classify(ctx, op, err)
		}
		switch kind {
		case 0:
			lp.Generation = gen
		case 1:
			lp.Active[action] = hash
		case 2:
			lp.Shadow[action] = append(lp.Shadow[action], hash)
		}
	}
	if err := rows.Err(); err != nil {
		return store.LivePolicies{}, classify(ctx, op, err)
	}
	return lp, nil
}

// WriteShadowResults implements store.PolicyStore: it inserts every result with one
// statement, skipping (decision, hash) pairs already stored. A zero CreatedAt is set to
// the store's clock. It returns an error wrapping store.ErrInvalidRecord, and writes
// nothing, when a result fails store.ValidateShadowResult.
func (s *Store) WriteShadowResults(ctx context.Context, rs []store.ShadowResult) error {
	const op = "write shadow results"
	if len(rs) == 0 {
		return nil
	}
	now := s.now()
	n := len(rs)
	ids, hashes, actions, outcomes, codes := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	times := make([]time.Time, n)
	for i, r := range rs {
		if err := store.ValidateShadowResult(r); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		if r.CreatedAt.IsZero() {
			r.CreatedAt = now
		}
		ids[i], hashes[i], actions[i], outcomes[i] = r.DecisionID, r.Hash, r.Action, r.Outcome
		codes[i], times[i] = reasonCodesJSON(r.ReasonCodes), r.CreatedAt
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO shadow_results (decision_id, hash, action, outcome, reason_codes, created_at)
		SELECT decision_id, hash, action, outcome, reason_codes::jsonb, created_at
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
			AS r(decision_id, hash, action, outcome, reason_codes, created_at)
		ON CONFLICT (decision_id, hash) DO NOTHING`, ids, hashes, actions, outcomes, codes, times); err != nil {
		return classify(ctx, op, err)
	}
	return nil
}

// ShadowAgreement implements store.PolicyStore: for each shadow version with results on
// the action's decisions created at or after since, ordered by hash (bytewise), how many
// there are, how many have the live outcome, and the live → shadow outcome counts. Shadow
// results stamped before since are left out too (a result is written after its decision),
// which lets the query start from the shadow_results index.
func (s *Store) ShadowAgreement(ctx context.Context, action string, since time.Time) ([]store.ShadowAgreement, error) {
	const op = "shadow agreement"
	rows, err := s.pool.Query(ctx, `SELECT r.hash, d.outcome, r.outcome, count(*),
			count(*) FILTER (WHERE r.reason_codes @> '["POLICY_ERROR"]'::jsonb)
		FROM shadow_results r JOIN decisions d ON d.id = r.decision_id
		WHERE r.action = $1 AND r.created_at >= $2 AND d.action = $1 AND d.created_at >= $2
		GROUP BY r.hash, d.outcome, r.outcome ORDER BY r.hash`, action, since)
	if err != nil {
		return nil, classify(ctx, op, err)
	}
	defer rows.Close()
	var out []store.ShadowAgreement
	for rows.Next() {
		var (
			hash, live, shadow string
			n, errs            int64
		)
		if err := rows.Scan(&hash, &live, &shadow, &n, &errs); err != nil {
			return nil, classify(ctx, op, err)
		}
		out = store.AddShadowAgreement(out, hash, live, shadow, n, errs)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(ctx, op, err)
	}
	return out, nil
}

func versionExists(ctx context.Context, tx pgx.Tx, hash string) error {
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM policy_versions WHERE hash = $1)`, hash).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		return fmt.Errorf("policy version %q: %w", hash, store.ErrNotFound)
	}
	return nil
}

// liveHash returns the action's live version, "" for the default bundle.
func liveHash(ctx context.Context, tx pgx.Tx, action string) (string, error) {
	var h string
	switch err := tx.QueryRow(ctx, `SELECT hash FROM policy_live WHERE action = $1`, action).Scan(&h); {
	case errors.Is(err, pgx.ErrNoRows):
		return "", nil
	case err != nil:
		return "", err
	}
	return h, nil
}

func supersedeActive(ctx context.Context, tx pgx.Tx, action string) error {
	_, err := tx.Exec(ctx, `UPDATE policy_activations SET status = $1 WHERE action = $2 AND status = $3`,
		store.ActivationSuperseded, action, store.ActivationActive)
	return err
}

func insertActivation(ctx context.Context, tx pgx.Tx, a store.PolicyActivation) error {
	_, err := tx.Exec(ctx, `INSERT INTO policy_activations (id, action, hash, previous, actor, approver, status, at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, a.ID, a.Action, a.Hash, a.Previous, a.Actor, a.Approver, a.Status, a.At)
	return err
}

// setLive makes hash the action's live version ("" removes it: the default bundle) and
// bumps the generation.
func setLive(ctx context.Context, tx pgx.Tx, action, hash string) error {
	var err error
	if hash == "" {
		_, err = tx.Exec(ctx, `DELETE FROM policy_live WHERE action = $1`, action)
	} else {
		_, err = tx.Exec(ctx, `INSERT INTO policy_live (action, hash) VALUES ($1, $2)
			ON CONFLICT (action) DO UPDATE SET hash = excluded.hash`, action, hash)
	}
	if err != nil {
		return err
	}
	return bumpGeneration(ctx, tx)
}

func bumpGeneration(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `UPDATE policy_generation SET generation = generation + 1`)
	return err
}

// makeLive sets the live row for activation a and appends its policy.activated event.
func makeLive(ctx context.Context, w *writeTx, a store.PolicyActivation, correlationID string, now time.Time) error {
	if err := setLive(ctx, w.tx, a.Action, a.Hash); err != nil {
		return err
	}
	ev, err := store.PolicyActivatedEvent(a, correlationID, now)
	if err != nil {
		return err
	}
	return w.append(ev)
}
