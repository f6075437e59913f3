// Package vault encrypts each subject's personal data under a data key of its own and
// destroys that key on erasure (crypto-shredding).
//
// A data key is 32 random bytes, created the first time something of the subject is
// sealed, stored only wrapped (AES-256-GCM) under a master key of the Ring, which lives
// outside the database (VERDICT_MASTER_KEY). Sealed values are AES-256-GCM with associated
// data naming the record and field they belong to, so a ciphertext copied onto another
// record, or another field, does not decrypt. Erasure deletes the wrapped key: no copy of
// the data (replica, backup, export) can be decrypted afterwards by anyone holding the
// master keys, once the master key the backup's wrapped key was under has been retired
// (see Rewrap).
package vault

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/verdict-engine/verdict/store"
)

// Errors.
var (
	// ErrShredded: the subject has no data key (erased, or nothing was ever sealed).
	ErrShredded = errors.New("the subject's data key does not exist (erased)")
	// ErrDecrypt: the value does not decrypt under the subject's key for this record and
	// field (tampered, copied from another record, or sealed under an erased key).
	ErrDecrypt = errors.New("sealed value does not decrypt for this subject, record and field")
)

// AD names what a sealed value belongs to; it is the associated data of the encryption.
type AD struct {
	Record string // decision, raw_payload, evidence
	ID     string // the record's id
	Field  string // pii, body, object
}

func (a AD) bytes(userID string) []byte {
	return []byte("verdict/v1\x00" + a.Record + "\x00" + a.ID + "\x00" + a.Field + "\x00" + userID)
}

// sealedVersion is the first byte of every sealed value.
const sealedVersion = 1

// Ring holds the master keys that wrap subjects' data keys: the first is active (wraps new
// keys), the others only unwrap keys not yet rewrapped.
type Ring struct {
	active string
	keys   map[string]cipher.AEAD
	checks map[string][]byte // key check values by id (checkValue)
}

// masterCheckLabel is MACed under a master key to make its check value.
const masterCheckLabel = "verdict/v1 master key check\x00"

// checkValue is the check value of a master key: an HMAC-SHA256 under the key of a fixed
// label and its id. It tells keys apart without revealing them.
func checkValue(id string, key []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(masterCheckLabel + id))
	return m.Sum(nil)
}

var kekID = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,32}$`)

// ParseRing reads master keys from "ID:BASE64[,ID:BASE64...]" (the first is active), or a
// lone BASE64 (id "1"). Each key is 32 bytes.
func ParseRing(s string) (*Ring, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("no master key")
	}
	r := &Ring{keys: map[string]cipher.AEAD{}, checks: map[string][]byte{}}
	seen := map[string]string{} // key bytes → id
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		id, b64, ok := strings.Cut(part, ":")
		if !ok {
			if i > 0 || strings.Contains(s, ",") {
				return nil, fmt.Errorf("master key %d: want ID:BASE64", i+1)
			}
			id, b64 = "1", part
		}
		if !kekID.MatchString(id) {
			return nil, fmt.Errorf("master key %d: id must be 1-32 of A-Z a-z 0-9 _ . -", i+1)
		}
		if _, dup := r.keys[id]; dup {
			return nil, fmt.Errorf("master key id %q given twice", id)
		}
		k, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(k) != 32 {
			return nil, fmt.Errorf("master key %q: want base64 of 32 bytes (openssl rand -base64 32)", id)
		}
		// One key under two ids is a rotation that rotates nothing: keys rotate would rewrap
		// every subject key under the same bytes and the old id could never be retired
		// safely.
		if other, dup := seen[string(k)]; dup {
			return nil, fmt.Errorf("master keys %q and %q are the same key; a rotation needs a new one (openssl rand -base64 32)", other, id)
		}
		seen[string(k)] = id
		aead, err := newAEAD(k)
		if err != nil {
			return nil, err
		}
		r.keys[id] = aead
		r.checks[id] = checkValue(id, k)
		if i == 0 {
			r.active = id
		}
	}
	return r, nil
}

// Active returns the id of the master key that wraps new keys.
func (r *Ring) Active() string { return r.active }

func newAEAD(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func wrapAD(userID string) []byte { return []byte("verdict/v1 subject key\x00" + userID) }

// newKey returns a fresh data key for userID, wrapped under the active master key, and the
// key itself.
func (r *Ring) newKey(userID string, now time.Time) (store.SubjectKey, []byte, error) {
	dk := make([]byte, 32)
	if _, err := rand.Read(dk); err != nil {
		return store.SubjectKey{}, nil, err
	}
	w, err := r.wrap(r.active, userID, dk)
	if err != nil {
		return store.SubjectKey{}, nil, err
	}
	return store.SubjectKey{UserID: userID, KEKID: r.active, Wrapped: w, CreatedAt: now}, dk, nil
}

func (r *Ring) wrap(id, userID string, dk []byte) ([]byte, error) {
	aead := r.keys[id]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(dk)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, dk, wrapAD(userID)), nil
}

// unwrap returns the data key of k.
func (r *Ring) unwrap(k store.SubjectKey) ([]byte, error) {
	aead, ok := r.keys[k.KEKID]
	if !ok {
		return nil, fmt.Errorf("subject key wrapped under master key %q, which is not configured", k.KEKID)
	}
	n := aead.NonceSize()
	if len(k.Wrapped) < n+aead.Overhead() {
		return nil, errors.New("wrapped subject key too short")
	}
	dk, err := aead.Open(nil, k.Wrapped[:n], k.Wrapped[n:], wrapAD(k.UserID))
	if err != nil || len(dk) != 32 {
		return nil, fmt.Errorf("subject key does not unwrap under master key %q", k.KEKID)
	}
	return dk, nil
}

// Vault seals and opens subjects' personal data.
//
// Unwrapped keys are cached for sealing only, for at most CacheTTL: a replica that has not
// yet seen an erasure may seal new data under the destroyed key for that long, and that
// data is then unreadable. A store that announces erasures (postgres.Store's
// OnSubjectKeysErased, wired to Forget and ForgetAll, and HearErasures) shortens that to
// the announcement's delivery while it listens, and keys are then kept for HeardCacheTTL;
// while it does not listen (reconnecting), cached keys are not used at all.
// Opening always reads the key from the store, so nothing sealed can be read once an
// erasure has committed.
type Vault struct {
	ring *Ring
	keys store.SubjectKeys
	now  func() time.Time
	ttl  time.Duration
	max  int
	// heard reports whether the store's erasure announcements are being delivered
	// (HearErasures); nil when the store has none.
	heard func() bool

	mu    sync.Mutex
	cache map[string]cached
	// gen counts Forget and ForgetAll calls: a key read or written before one of them is
	// not cached after it, since the erasure it announces may be of that very key.
	gen uint64
}

// cached is an unwrapped data key; its AEAD is made on use (0.4 µs) rather than kept
// (about 800 bytes each, against 32).
type cached struct {
	dk []byte
	at time.Time
}

// CacheTTL is how long an unwrapped key is kept for sealing.
const CacheTTL = time.Minute

// HeardCacheTTL is how long an unwrapped key is kept for sealing while the store's erasure
// announcements are heard (HearErasures): every erasure then reaches Forget as it commits,
// so the key is only kept longer for subjects that come back (a login, then a payout).
const HeardCacheTTL = 15 * time.Minute

// New returns a Vault over the store's keys.
func New(ring *Ring, keys store.SubjectKeys) *Vault {
	return &Vault{ring: ring, keys: keys, now: time.Now, ttl: CacheTTL, max: 100_000, cache: map[string]cached{}}
}

// HearErasures tells the vault that the store announces every erasure, committed by any
// process, to Forget (and asks for ForgetAll when it may have missed some), and that heard
// reports whether announcements are being delivered right now. While they are, cached keys
// are kept for HeardCacheTTL instead of CacheTTL. Call it once, before the vault is used.
func (v *Vault) HearErasures(heard func() bool) { v.heard = heard }

func (v *Vault) cachedAEAD(userID string, now time.Time) cipher.AEAD {
	v.mu.Lock()
	c, ok := v.cache[userID]
	v.mu.Unlock()
	if !ok {
		return nil
	}
	switch age := now.Sub(c.at); {
	case v.heard == nil:
		if age > v.ttl {
			return nil
		}
	case !v.heard():
		// The store announces erasures but this replica is not hearing them now (its
		// listener is reconnecting): one committed meanwhile by another replica would go
		// unnoticed, so every key is read again until it hears (and forgets all) again.
		return nil
	case age > HeardCacheTTL:
		return nil
	}
	a, err := newAEAD(c.dk)
	if err != nil {
		return nil
	}
	return a
}

// generation returns the count remember compares with the one its caller read before it
// looked the key up.
func (v *Vault) generation() uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.gen
}

// remember caches a key for sealing, unless something was forgotten since generation gen.
func (v *Vault) remember(userID string, dk []byte, now time.Time, gen uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.gen != gen {
		return
	}
	if len(v.cache) >= v.max {
		clear(v.cache)
	}
	v.cache[userID] = cached{dk: dk, at: now}
}

// Forget drops a subject's key from this process's cache: its erasure here, or announced
// by the store (postgres.Store.OnSubjectKeysErased).
func (v *Vault) Forget(userID string) {
	v.mu.Lock()
	delete(v.cache, userID)
	v.gen++
	v.mu.Unlock()
}

// ForgetAll empties this process's key cache: erasures may have gone unheard.
func (v *Vault) ForgetAll() {
	v.mu.Lock()
	clear(v.cache)
	v.gen++
	v.mu.Unlock()
}

// resolve returns an AEAD for every distinct user: from the cache, else from the store's
// key (one lookup for all), else from a fresh key, returned in fresh with its data key and
// not stored: the caller stores it (with the data, or with EnsureSubjectKeys) before caching
// it. A user whose stored key does not unwrap (wrapped under a master key this process
// lacks, or damaged) is in failed with the reason and not in the AEADs, so that one such
// subject does not fail the others'. gen is the caller's generation() from before: keys are
// cached only if nothing was forgotten since.
func (v *Vault) resolve(ctx context.Context, userIDs []string, gen uint64) (map[string]cipher.AEAD, map[string]*freshKey, map[string]error, error) {
	now := v.now()
	out := make(map[string]cipher.AEAD, len(userIDs))
	var missing []string
	for _, u := range userIDs {
		if _, done := out[u]; done {
			continue
		}
		if a := v.cachedAEAD(u, now); a != nil {
			out[u] = a
			continue
		}
		out[u] = nil
		missing = append(missing, u)
	}
	if len(missing) == 0 {
		return out, nil, nil, nil
	}
	stored, err := v.keys.LookupSubjectKeys(ctx, missing)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("subject keys: %w", err)
	}
	var failed map[string]error
	for _, k := range stored {
		dk, a, err := v.open(k)
		if err != nil {
			if failed == nil {
				failed = map[string]error{}
			}
			failed[k.UserID] = err
			delete(out, k.UserID)
			continue
		}
		out[k.UserID] = a
		v.remember(k.UserID, dk, now, gen)
	}
	var fresh map[string]*freshKey
	for _, u := range missing {
		if out[u] != nil || failed[u] != nil {
			continue
		}
		k, dk, err := v.ring.newKey(u, now.UTC())
		if err != nil {
			return nil, nil, nil, err
		}
		a, err := newAEAD(dk)
		if err != nil {
			return nil, nil, nil, err
		}
		if fresh == nil {
			fresh = map[string]*freshKey{}
		}
		out[u], fresh[u] = a, &freshKey{SubjectKey: k, dk: dk}
	}
	return out, fresh, failed, nil
}

// freshKey is a new subject key, wrapped for the store, and its data key.
type freshKey struct {
	store.SubjectKey
	dk []byte
}

// open unwraps a stored key into its data key, for the cache, and an AEAD.
func (v *Vault) open(k store.SubjectKey) ([]byte, cipher.AEAD, error) {
	dk, err := v.ring.unwrap(k)
	if err != nil {
		return nil, nil, err
	}
	a, err := newAEAD(dk)
	return dk, a, err
}

// sealer returns the AEAD of one user, storing a new key if the user has none.
func (v *Vault) sealer(ctx context.Context, userID string) (cipher.AEAD, error) {
	gen := v.generation()
	as, fresh, failed, err := v.resolve(ctx, []string{userID}, gen)
	if err != nil {
		return nil, err
	}
	if err := failed[userID]; err != nil {
		return nil, err
	}
	k, isNew := fresh[userID]
	if !isNew {
		return as[userID], nil
	}
	stored, err := v.keys.EnsureSubjectKeys(ctx, []store.SubjectKey{k.SubjectKey})
	if err != nil {
		return nil, fmt.Errorf("subject keys: %w", err)
	}
	if len(stored) != 1 {
		return nil, fmt.Errorf("subject keys: store returned %d keys for 1 subject", len(stored))
	}
	dk, a, err := v.open(stored[0]) // ours, or one a concurrent writer stored first
	if err != nil {
		return nil, err
	}
	v.remember(userID, dk, v.now(), gen)
	return a, nil
}

func seal(a cipher.AEAD, ad []byte, plaintext []byte) ([]byte, error) {
	out := make([]byte, 1+a.NonceSize(), 1+a.NonceSize()+len(plaintext)+a.Overhead())
	out[0] = sealedVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, err
	}
	return a.Seal(out, out[1:], plaintext, ad), nil
}

// Seal encrypts plaintext under userID's data key (created if the subject has none),
// bound to ad.
func (v *Vault) Seal(ctx context.Context, userID string, ad AD, plaintext []byte) ([]byte, error) {
	if userID == "" {
		return nil, errors.New("seal: empty user id")
	}
	a, err := v.sealer(ctx, userID)
	if err != nil {
		return nil, err
	}
	return seal(a, ad.bytes(userID), plaintext)
}

// Open decrypts what Seal returned for the same subject and ad. It returns an error
// wrapping ErrShredded when the subject's key is gone, ErrDecrypt when the value does not
// decrypt under it for ad, and a store error (ErrUnavailable, ...) otherwise.
func (v *Vault) Open(ctx context.Context, userID string, ad AD, sealed []byte) ([]byte, error) {
	k, err := v.keys.GetSubjectKey(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrShredded
	}
	if err != nil {
		return nil, err
	}
	_, a, err := v.open(k)
	if err != nil {
		return nil, err
	}
	n := a.NonceSize()
	if len(sealed) < 1+n+a.Overhead() || sealed[0] != sealedVersion {
		return nil, ErrDecrypt
	}
	pt, err := a.Open(nil, sealed[1:1+n], sealed[1+n:], ad.bytes(userID))
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// DecisionAD is the associated data of a decision's sealed personal data.
func DecisionAD(decisionID string) AD { return AD{Record: "decision", ID: decisionID, Field: "pii"} }

// Writer wraps a DecisionWriter so that every record's PIIPlain is sealed into PII, under
// its subject's key and bound to its decision, before the batch is written. Keys not in
// the cache are looked up with one store call per batch; a subject without one gets a new
// key, written in the batch's own transaction (DecisionRecord.NewSubjectKey), so a batch
// costs one transaction whatever its subjects.
func (v *Vault) Writer(w store.DecisionWriter) store.DecisionWriter {
	return &sealingWriter{v: v, w: w}
}

type sealingWriter struct {
	v *Vault
	w store.DecisionWriter
}

func (s *sealingWriter) WriteDecisions(ctx context.Context, recs []store.DecisionRecord) ([]error, error) {
	var users []string
	for i := range recs {
		if recs[i].PIIPlain != nil && recs[i].SubjectID != "" {
			users = append(users, recs[i].SubjectID)
		}
	}
	if len(users) == 0 {
		return s.w.WriteDecisions(ctx, recs)
	}
	gen := s.v.generation()
	as, fresh, failed, err := s.v.resolve(ctx, users, gen)
	if err != nil {
		return nil, err
	}
	if len(failed) > 0 {
		return s.writeWithout(ctx, recs, failed)
	}
	out := make([]store.DecisionRecord, len(recs))
	copy(out, recs)
	for i := range out {
		r := &out[i]
		if r.PIIPlain == nil || r.SubjectID == "" {
			continue // a record without a subject keeps PIIPlain and is refused by the store
		}
		if r.PII, err = seal(as[r.SubjectID], DecisionAD(r.ID).bytes(r.SubjectID), r.PIIPlain); err != nil {
			return nil, err
		}
		r.PIIPlain = nil
		if k := fresh[r.SubjectID]; k != nil {
			r.NewSubjectKey = &k.SubjectKey
		}
	}
	results, err := s.w.WriteDecisions(ctx, out)
	if err != nil {
		return nil, err
	}
	var retry []int
	now := s.v.now()
	for i := range out {
		if out[i].NewSubjectKey == nil {
			continue
		}
		switch {
		case results[i] == nil:
			s.v.remember(out[i].SubjectID, fresh[out[i].SubjectID].dk, now, gen)
		case errors.Is(results[i], store.ErrSubjectKeyExists):
			retry = append(retry, i)
		}
	}
	if len(retry) > 0 {
		s.reseal(ctx, recs, retry, results)
	}
	return results, nil
}

// writeWithout writes the records of every subject but those whose key did not unwrap
// (failed), which get that error as their result: a subject whose key was wrapped under a
// master key this replica lacks, or was damaged, fails its own decisions only, not the
// others' sharing the batch.
func (s *sealingWriter) writeWithout(ctx context.Context, recs []store.DecisionRecord, failed map[string]error) ([]error, error) {
	results := make([]error, len(recs))
	rest := make([]store.DecisionRecord, 0, len(recs))
	idx := make([]int, 0, len(recs))
	for i, r := range recs {
		if err := failed[r.SubjectID]; err != nil && r.PIIPlain != nil {
			results[i] = err
			continue
		}
		rest, idx = append(rest, r), append(idx, i)
	}
	if len(rest) == 0 {
		return results, nil
	}
	res, err := s.WriteDecisions(ctx, rest)
	if err != nil {
		return nil, err
	}
	for j, i := range idx {
		results[i] = res[j]
	}
	return results, nil
}

// reseal writes again the records whose new key lost to a key another writer stored
// meanwhile, sealed under that key; their slots in results get the outcome.
func (s *sealingWriter) reseal(ctx context.Context, recs []store.DecisionRecord, retry []int, results []error) {
	var users []string
	for _, i := range retry {
		users = append(users, recs[i].SubjectID)
		s.v.Forget(recs[i].SubjectID)
	}
	fail := func(err error) {
		for _, i := range retry {
			results[i] = err
		}
	}
	stored, err := s.v.keys.LookupSubjectKeys(ctx, users)
	if err != nil {
		fail(fmt.Errorf("subject keys: %w", err))
		return
	}
	as := map[string]cipher.AEAD{}
	for _, k := range stored {
		_, a, err := s.v.open(k)
		if err != nil {
			fail(err)
			return
		}
		as[k.UserID] = a
	}
	sub := make([]store.DecisionRecord, 0, len(retry))
	idx := make([]int, 0, len(retry))
	for _, i := range retry {
		r := recs[i]
		a := as[r.SubjectID]
		if a == nil {
			continue // the key vanished again (erased meanwhile): keep ErrSubjectKeyExists
		}
		if r.PII, err = seal(a, DecisionAD(r.ID).bytes(r.SubjectID), r.PIIPlain); err != nil {
			fail(err)
			return
		}
		r.PIIPlain = nil
		sub, idx = append(sub, r), append(idx, i)
	}
	if len(sub) == 0 {
		return
	}
	res, err := s.w.WriteDecisions(ctx, sub)
	for j, i := range idx {
		if err != nil {
			results[i] = err
		} else {
			results[i] = res[j]
		}
	}
}

// checkSamples is how many stored keys per master key id CheckRing tries: one is enough
// when the key is right, and a few keep one damaged row from being taken for a wrong key.
const checkSamples = 3

// CheckRing checks the master keys against the subject keys already stored: every master
// key id that wraps one must be in the ring, and its key must unwrap them. A process
// started with another master key than the one the store's keys were wrapped under (the
// environment variable forgotten on one replica, a key file made afresh in another data
// directory) would otherwise answer decisions it cannot store, and seal new subjects'
// data under a key the other replicas do not have. An empty store passes.
func (v *Vault) CheckRing(ctx context.Context) error {
	if v.ring == nil {
		return errors.New("no master keys")
	}
	sample, err := v.keys.SampleSubjectKeys(ctx, checkSamples)
	if err != nil {
		return fmt.Errorf("check master keys: %w", err)
	}
	unwrapped := map[string]bool{}
	var ids []string
	for _, k := range sample {
		if _, seen := unwrapped[k.KEKID]; !seen {
			ids = append(ids, k.KEKID)
			unwrapped[k.KEKID] = false
		}
		if _, ok := v.ring.keys[k.KEKID]; !ok {
			continue
		}
		if _, err := v.ring.unwrap(k); err == nil {
			unwrapped[k.KEKID] = true
		}
	}
	for _, id := range ids {
		if _, ok := v.ring.keys[id]; !ok {
			return fmt.Errorf("the store holds subject keys wrapped under master key %q, which is not configured: "+
				"keep it in the ring, after the active key, until `verdict keys rotate` has rewrapped them", id)
		}
		if !unwrapped[id] {
			return fmt.Errorf("master key %q does not unwrap the subject keys stored under that id: "+
				"it is not the key this store's personal data was sealed with", id)
		}
	}
	return nil
}

// ClaimRing compares each master key's check value with the one the store recorded when a
// process first claimed that id, recording it if none is (store.KeyChecks, name
// "master:ID"). CheckRing cannot tell two servers started on an empty store with different
// keys under one id (one given VERDICT_MASTER_KEY, one a fresh key file in its own data
// directory): each would seal its subjects' data under a key the other cannot unwrap, and
// once both have stored keys each passes CheckRing on its own. Call it once the process is
// otherwise ready to serve, so that a start that fails anyway claims nothing. An id once
// claimed keeps its key: a retired id cannot be given a new key.
func (v *Vault) ClaimRing(ctx context.Context, kc store.KeyChecks) error {
	if v.ring == nil {
		return errors.New("no master keys")
	}
	for _, id := range slices.Sorted(maps.Keys(v.ring.checks)) {
		check := v.ring.checks[id]
		stored, err := kc.ClaimKeyCheck(ctx, "master:"+id, check)
		if err != nil {
			return fmt.Errorf("check master key %q: %w", id, err)
		}
		if !hmac.Equal(stored, check) {
			return fmt.Errorf("master key %q is not the key the store's first server recorded under that id: "+
				"the subject keys it wraps could not be unwrapped by the other servers; give every server the same keys "+
				"(a retired id cannot be reused for a new key)", id)
		}
	}
	return nil
}

// Rewrap rewraps every subject key not under the active master key, so that the old
// master key can be retired: once it is removed from every configuration and its copies
// destroyed, keys wrapped under it (in backups taken before an erasure) cannot be
// unwrapped any more.
func (v *Vault) Rewrap(ctx context.Context) (int, error) {
	return v.keys.RewrapSubjectKeys(ctx, v.ring.active, func(k store.SubjectKey) (store.SubjectKey, error) {
		dk, err := v.ring.unwrap(k)
		if err != nil {
			return store.SubjectKey{}, err
		}
		w, err := v.ring.wrap(v.ring.active, k.UserID, dk)
		if err != nil {
			return store.SubjectKey{}, err
		}
		k.KEKID, k.Wrapped = v.ring.active, w
		return k, nil
	})
}

// BlobDeleter deletes evidence objects (adapters/evidence.Store).
type BlobDeleter interface {
	Delete(ctx context.Context, key string) error
}

// Erasure reports an erasure: what the store destroyed, and what became of the subject's
// evidence objects.
type Erasure struct {
	store.Erasure
	EvidenceDeleted int `json:"evidence_deleted"`
	// EvidenceFailed counts objects that could not be deleted now: they stay sealed under
	// the destroyed key, unreadable, and their pointers listed as they were, until deleted
	// by retention or by erasing again.
	EvidenceFailed int `json:"evidence_failed"`
	// EvidenceErr is why the first of them failed (nil when none did), for the operator:
	// it names the object's key (verification and evidence ids), never the subject.
	EvidenceErr error `json:"-"`
}

// Erase erases a subject: the store destroys the subject's key, deletes the sealed
// personal data and raw payloads and audits it, in one transaction; then this process
// forgets the key, blobs (if not nil) deletes the subject's evidence objects, and the
// store marks the pointers of those deleted EvidenceDeleted (audited with a count). A
// pointer whose object could not be deleted stays as it was, for erasing again or
// retention to retry. If the marking fails, Erase returns the report with the error:
// erasing again marks them.
func (v *Vault) Erase(ctx context.Context, userID, actor, correlationID string, blobs BlobDeleter) (Erasure, error) {
	e, err := v.keys.EraseSubject(ctx, userID, actor, correlationID)
	if err != nil {
		return Erasure{}, err
	}
	v.Forget(userID)
	out := Erasure{Erasure: e}
	var deleted []store.DueEvidence
	for _, d := range e.Evidence {
		if blobs == nil {
			out.EvidenceFailed++
			if out.EvidenceErr == nil {
				out.EvidenceErr = errors.New("no evidence bucket configured")
			}
			continue
		}
		if err := blobs.Delete(ctx, d.BlobKey); err != nil {
			out.EvidenceFailed++
			if out.EvidenceErr == nil {
				out.EvidenceErr = err
			}
			continue
		}
		deleted = append(deleted, d)
	}
	out.EvidenceDeleted = len(deleted)
	if len(deleted) > 0 {
		if _, err := v.keys.MarkSubjectEvidenceDeleted(ctx, userID, actor, correlationID, deleted); err != nil {
			return out, fmt.Errorf("erasure done and %d evidence objects deleted, but their pointers were not marked deleted (erase again to mark them): %w",
				len(deleted), err)
		}
	}
	return out, nil
}

// NewRing returns a ring of one 32-byte master key under id.
func NewRing(id string, key []byte) (*Ring, error) {
	return ParseRing(id + ":" + base64.StdEncoding.EncodeToString(key))
}
