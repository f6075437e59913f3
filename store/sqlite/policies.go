package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/verdict-engine/verdict/store"
)

var _ store.PolicyStore = (*Store)(nil)

// PublishPolicy implements store.PolicyStore: it stores v and its files and appends a
// policy.published audit event, in one transaction. A zero CreatedAt is set to the store's
// clock. Publishing a hash already stored returns created=false and changes nothing (the
// stored label, author and files are kept). It returns an error wrapping
// store.ErrInvalidRecord for a version store.ValidatePolicyVersion refuses. The store does
// not recompute the hash: the caller computes it over the files.
func (s *Store) PublishPolicy(ctx context.Context, v store.PolicyVersion, correlationID string) (bool, error) {
	if err := store.ValidatePolicyVersion(v); err != nil {
		return false, fmt.Errorf("publish policy: %w", err)
	}
	now := s.now()
	if v.CreatedAt.IsZero() {
		v.CreatedAt = now
	}
	var created bool
	err := s.writeTx(ctx, "publish policy", func(tx *sql.Tx, c *chain) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO policy_versions (hash, label, author, changelog, created_at)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (hash) DO NOTHING`,
			v.Hash, v.Label, v.Author, v.Changelog, micros(v.CreatedAt))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		created = true
		ins, err := tx.PrepareContext(ctx, `INSERT INTO policy_files (hash, path, content) VALUES (?, ?, ?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		for _, p := range sortedPaths(v.Files) {
			content := v.Files[p]
			if content == nil {
				content = []byte{}
			}
			if _, err := ins.ExecContext(ctx, v.Hash, p, content); err != nil {
				return err
			}
		}
		ev, err := store.PolicyPublishedEvent(v, correlationID, now)
		if err != nil {
			return err
		}
		return c.append(ctx, ev)
	})
	if err != nil {
		return false, err
	}
	return created, nil
}

func sortedPaths(files map[string][]byte) []string {
	out := make([]string, 0, len(files))
	for p := range files {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// PolicyVersion implements store.PolicyStore: the version with every file, or an error
// wrapping store.ErrNotFound.
func (s *Store) PolicyVersion(ctx context.Context, hash string) (store.PolicyVersion, error) {
	const op = "policy version"
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return store.PolicyVersion{}, classify(ctx, op, err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	var (
		v  store.PolicyVersion
		at int64
	)
	switch err := tx.QueryRowContext(ctx, `SELECT hash, label, author, changelog, created_at FROM policy_versions
		WHERE hash = ?`, hash).Scan(&v.Hash, &v.Label, &v.Author, &v.Changelog, &at); {
	case errors.Is(err, sql.ErrNoRows):
		return store.PolicyVersion{}, fmt.Errorf("%s %q: %w", op, hash, store.ErrNotFound)
	case err != nil:
		return store.PolicyVersion{}, classify(ctx, op, err)
	}
	v.CreatedAt = fromMicros(at)
	rows, err := tx.QueryContext(ctx, `SELECT path, content FROM policy_files WHERE hash = ? ORDER BY path`, hash)
	if err != nil {
		return store.PolicyVersion{}, classify(ctx, op, err)
	}
	defer rows.Close()
	v.Files = map[string][]byte{}
	for rows.Next() {
		var (
			p       string
			content []byte
		)
		if err := rows.Scan(&p, &content); err != nil {
			return store.PolicyVersion{}, classify(ctx, op, err)
		}
		if content == nil {
			content = []byte{}
		}
		v.Files[p] = content
	}
	if err := rows.Err(); err != nil {
		return store.PolicyVersion{}, classify(ctx, op, err)
	}
	return v, nil
}

// ListPolicyVersions implements store.PolicyStore: every version without its files, newest
// CreatedAt first, the later published first among equal times.
func (s *Store) ListPolicyVersions(ctx context.Context) ([]store.PolicyVersion, error) {
	const op = "list policy versions"
	rows, err := s.r.QueryContext(ctx, `SELECT hash, label, author, changelog, created_at FROM policy_versions
		ORDER BY created_at DESC, rowid DESC`)
	if err != nil {
		return nil, classify(ctx, op, err)
	}
	defer rows.Close()
	var out []store.PolicyVersion
	for rows.Next() {
		var (
			v  store.PolicyVersion
			at int64
		)
		if err := rows.Scan(&v.Hash, &v.Label, &v.Author, &v.Changelog, &at); err != nil {
			return nil, classify(ctx, op, err)
		}
		v.CreatedAt = fromMicros(at)
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(ctx, op, err)
	}
	return out, nil
}

const activationColumns = `seq, id, action, hash, previous, actor, approver, status, at`

func scanActivation(row rowScanner) (int64, store.PolicyActivation, error) {
	var (
		seq int64
		a   store.PolicyActivation
		at  int64
	)
	if err := row.Scan(&seq, &a.ID, &a.Action, &a.Hash, &a.Previous, &a.Actor, &a.Approver, &a.Status, &at); err != nil {
		return 0, store.PolicyActivation{}, err
	}
	a.At = fromMicros(at)
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
	a.At = a.At.UTC().Truncate(time.Microsecond)
	err := s.writeTx(ctx, op, func(tx *sql.Tx, c *chain) error {
		if err := versionExists(ctx, tx, a.Hash); err != nil {
			return err
		}
		prev, err := liveHash(ctx, tx, a.Action)
		if err != nil {
			return err
		}
		a.Previous = prev
		if requireApproval {
			a.Status = store.ActivationPending
			if err := insertActivation(ctx, tx, a); err != nil {
				return err
			}
			ev, err := store.PolicyActivationRequestedEvent(a, correlationID, now)
			if err != nil {
				return err
			}
			return c.append(ctx, ev)
		}
		a.Status = store.ActivationActive
		if err := supersedeActive(ctx, tx, a.Action); err != nil {
			return err
		}
		if err := insertActivation(ctx, tx, a); err != nil {
			return err
		}
		return makeLive(ctx, tx, c, a, correlationID, now)
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
	if approver == "" || !store.ValidText(approver) {
		return store.PolicyActivation{}, fmt.Errorf("%s: %w", op, store.InvalidRecordf("approver is required"))
	}
	now := s.now()
	var a store.PolicyActivation
	err := s.writeTx(ctx, op, func(tx *sql.Tx, c *chain) error {
		seq, got, err := scanActivation(tx.QueryRowContext(ctx, `SELECT `+activationColumns+` FROM policy_activations
			WHERE id = ?`, id))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("activation %q: %w", id, store.ErrNotFound)
		case err != nil:
			return err
		case got.Status != store.ActivationPending:
			return fmt.Errorf("activation %q is %s, not pending: %w", id, got.Status, store.ErrNotFound)
		case strings.EqualFold(strings.TrimSpace(got.Actor), strings.TrimSpace(approver)): // "DANA" is dana
			return fmt.Errorf("activation %q: %s requested it and cannot approve it: %w", id, approver, store.ErrConflict)
		}
		a = got
		prev, err := liveHash(ctx, tx, a.Action)
		if err != nil {
			return err
		}
		if err := store.CheckStillPrevious(a, prev); err != nil {
			return err
		}
		a.Previous, a.Approver, a.Status, a.At = prev, approver, store.ActivationActive, now.UTC().Truncate(time.Microsecond)
		if err := supersedeActive(ctx, tx, a.Action); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE policy_activations SET previous = ?, approver = ?, status = ?, at = ?
			WHERE seq = ?`, a.Previous, a.Approver, a.Status, micros(a.At), seq); err != nil {
			return err
		}
		return makeLive(ctx, tx, c, a, correlationID, now)
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
	err := s.writeTx(ctx, op, func(tx *sql.Tx, c *chain) error {
		seq, cur, err := scanActivation(tx.QueryRowContext(ctx, `SELECT `+activationColumns+` FROM policy_activations
			WHERE action = ? AND status = 'active' AND hash <> ''`, action))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("action %q runs the default bundle: nothing to roll back: %w", action, store.ErrNotFound)
		case err != nil:
			return err
		}
		// The restored version's own predecessor, from the history replayed.
		var restoredPrev string
		if cur.Previous != "" {
			rows, err := tx.QueryContext(ctx, `SELECT `+activationColumns+` FROM policy_activations
				WHERE action = ? AND status <> ? ORDER BY at, seq`, action, store.ActivationPending)
			if err != nil {
				return err
			}
			defer rows.Close()
			var history []store.PolicyActivation
			for rows.Next() {
				_, a, err := scanActivation(rows)
				if err != nil {
					return err
				}
				history = append(history, a)
			}
			if err := rows.Err(); err != nil {
				return err
			}
			restoredPrev = store.RestoredPrevious(history)
		}
		id, err := uuid.NewV7()
		if err != nil {
			return err
		}
		a = store.PolicyActivation{ID: id.String(), Action: action, Hash: cur.Previous, Previous: restoredPrev,
			Actor: actor, Status: store.ActivationActive, At: now.UTC().Truncate(time.Microsecond)}
		if _, err := tx.ExecContext(ctx, `UPDATE policy_activations SET status = ? WHERE seq = ?`,
			store.ActivationRolledBack, seq); err != nil {
			return err
		}
		if err := insertActivation(ctx, tx, a); err != nil {
			return err
		}
		if err := setLive(ctx, tx, action, a.Hash); err != nil {
			return err
		}
		ev, err := store.PolicyRolledBackEvent(a, cur.Hash, correlationID, now)
		if err != nil {
			return err
		}
		return c.append(ctx, ev)
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
	rows, err := s.r.QueryContext(ctx, `SELECT `+activationColumns+` FROM policy_activations
		WHERE action = ? ORDER BY seq DESC`, action)
	if err != nil {
		return nil, classify(ctx, op, err)
	}
	defer rows.Close()
	var out []store.PolicyActivation
	for rows.Next() {
		_, a, err := scanActivation(rows)
		if err != nil {
			return nil, classify(ctx, op, err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
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
	return s.writeTx(ctx, op, func(tx *sql.Tx, c *chain) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM policy_shadow WHERE action = ?`, action); err != nil {
			return err
		}
		for i, h := range hashes {
			if err := versionExists(ctx, tx, h); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO policy_shadow (action, position, hash) VALUES (?, ?, ?)`,
				action, i, h); err != nil {
				return err
			}
		}
		if err := bumpGeneration(ctx, tx); err != nil {
			return err
		}
		ev, err := store.PolicyShadowSetEvent(action, hashes, actor, correlationID, now)
		if err != nil {
			return err
		}
		return c.append(ctx, ev)
	})
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
// versions in one snapshot.
func (s *Store) LivePolicies(ctx context.Context) (store.LivePolicies, error) {
	const op = "live policies"
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return store.LivePolicies{}, classify(ctx, op, err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	lp := store.LivePolicies{Active: map[string]string{}, Shadow: map[string][]string{}}
	if err := tx.QueryRowContext(ctx, `SELECT generation FROM policy_generation WHERE id = 1`).Scan(&lp.Generation); err != nil {
		return store.LivePolicies{}, classify(ctx, op, err)
	}
	err = eachRow(ctx, tx, `SELECT action, hash FROM policy_live`, func(action, hash string) {
		lp.Active[action] = hash
	})
	if err != nil {
		return store.LivePolicies{}, classify(ctx, op, err)
	}
	err = eachRow(ctx, tx, `SELECT action, hash FROM policy_shadow ORDER BY action, position`, func(action, hash string) {
		lp.Shadow[action] = append(lp.Shadow[action], hash)
	})
	if err != nil {
		return store.LivePolicies{}, classify(ctx, op, err)
	}
	return lp, nil
}

func eachRow(ctx context.Context, tx *sql.Tx, query string, fn func(a, b string)) error {
	rows, err := tx.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var a, b string
		if err := rows.Scan(&a, &b); err != nil {
			return err
		}
		fn(a, b)
	}
	return rows.Err()
}

// WriteShadowResults implements store.PolicyStore: it inserts every result in one
// transaction, skipping (decision, hash) pairs already stored. A zero CreatedAt is set to
// the store's clock. It returns an error wrapping store.ErrInvalidRecord, and writes
// nothing, when a result fails store.ValidateShadowResult.
func (s *Store) WriteShadowResults(ctx context.Context, rs []store.ShadowResult) error {
	const op = "write shadow results"
	if len(rs) == 0 {
		return nil
	}
	for _, r := range rs {
		if err := store.ValidateShadowResult(r); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	now := s.now()
	// Shadow results are derived data a replay can recompute: they are committed with
	// synchronous=NORMAL, without the fsync every other write pays, so that they hold the
	// one write connection for the inserts only and live decisions do not queue behind a
	// disk flush for them. WAL keeps the database consistent; a power cut may lose the last
	// ones. The connection goes back to synchronous=FULL before anything else uses it, or
	// is discarded (a new one opens with FULL from the DSN).
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return classify(ctx, op, err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = NORMAL`); err != nil {
		return classify(ctx, op, err)
	}
	defer func() {
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA synchronous = FULL`); err != nil {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return classify(ctx, op, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	ins, err := tx.PrepareContext(ctx, `INSERT INTO shadow_results (decision_id, hash, action, outcome, reason_codes, created_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (decision_id, hash) DO NOTHING`)
	if err != nil {
		return classify(ctx, op, err)
	}
	defer ins.Close()
	for _, r := range rs {
		at := r.CreatedAt
		if at.IsZero() {
			at = now
		}
		if _, err := ins.ExecContext(ctx, r.DecisionID, r.Hash, r.Action, r.Outcome, reasonCodesJSON(r.ReasonCodes), micros(at)); err != nil {
			return classify(ctx, op, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return classify(ctx, op, err)
	}
	return nil
}

// ShadowAgreement implements store.PolicyStore: for each shadow version with results on
// the action's decisions created at or after since, ordered by hash, how many there are,
// how many have the live outcome, and the live → shadow outcome counts. Shadow results
// stamped before since are left out too (a result is written after its decision), which
// lets the query start from the shadow_results index.
func (s *Store) ShadowAgreement(ctx context.Context, action string, since time.Time) ([]store.ShadowAgreement, error) {
	const op = "shadow agreement"
	rows, err := s.r.QueryContext(ctx, `SELECT r.hash, d.outcome, r.outcome, COUNT(*),
			SUM(EXISTS (SELECT 1 FROM json_each(r.reason_codes) WHERE json_each.value = 'POLICY_ERROR'))
		FROM shadow_results r JOIN decisions d ON d.id = r.decision_id
		WHERE r.action = ? AND r.created_at >= ? AND d.action = ? AND d.created_at >= ?
		GROUP BY r.hash, d.outcome, r.outcome ORDER BY r.hash`, action, micros(since), action, micros(since))
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

func versionExists(ctx context.Context, tx *sql.Tx, hash string) error {
	var one int
	switch err := tx.QueryRowContext(ctx, `SELECT 1 FROM policy_versions WHERE hash = ?`, hash).Scan(&one); {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("policy version %q: %w", hash, store.ErrNotFound)
	case err != nil:
		return err
	}
	return nil
}

// liveHash returns the action's live version, "" for the default bundle.
func liveHash(ctx context.Context, tx *sql.Tx, action string) (string, error) {
	var h string
	switch err := tx.QueryRowContext(ctx, `SELECT hash FROM policy_live WHERE action = ?`, action).Scan(&h); {
	case errors.Is(err, sql.ErrNoRows):
		return "", nil
	case err != nil:
		return "", err
	}
	return h, nil
}

func supersedeActive(ctx context.Context, tx *sql.Tx, action string) error {
	_, err := tx.ExecContext(ctx, `UPDATE policy_activations SET status = ? WHERE action = ? AND status = ?`,
		store.ActivationSuperseded, action, store.ActivationActive)
	return err
}

func insertActivation(ctx context.Context, tx *sql.Tx, a store.PolicyActivation) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO policy_activations (id, action, hash, previous, actor, approver, status, at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, a.ID, a.Action, a.Hash, a.Previous, a.Actor, a.Approver, a.Status, micros(a.At))
	return err
}

// setLive makes hash the action's live version ("" removes it: the default bundle) and
// bumps the generation.
func setLive(ctx context.Context, tx *sql.Tx, action, hash string) error {
	var err error
	if hash == "" {
		_, err = tx.ExecContext(ctx, `DELETE FROM policy_live WHERE action = ?`, action)
	} else {
		_, err = tx.ExecContext(ctx, `INSERT INTO policy_live (action, hash) VALUES (?, ?)
			ON CONFLICT (action) DO UPDATE SET hash = excluded.hash`, action, hash)
	}
	if err != nil {
		return err
	}
	return bumpGeneration(ctx, tx)
}

func bumpGeneration(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `UPDATE policy_generation SET generation = generation + 1 WHERE id = 1`)
	return err
}

// makeLive sets the live row for activation a and appends its policy.activated event.
func makeLive(ctx context.Context, tx *sql.Tx, c *chain, a store.PolicyActivation, correlationID string, now time.Time) error {
	if err := setLive(ctx, tx, a.Action, a.Hash); err != nil {
		return err
	}
	ev, err := store.PolicyActivatedEvent(a, correlationID, now)
	if err != nil {
		return err
	}
	return c.append(ctx, ev)
}
