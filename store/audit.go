package store

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// The audit log is a hash chain: every event carries the hash of the one before it, and its
// own hash is ChainHash(prev_hash, event) = SHA-256(prev_hash || CanonicalEvent(event)).
// The first event's prev_hash is empty. Changing, removing or reordering any stored event
// breaks every link after it, which VerifyChain reports; rewriting the whole chain from
// some point on is caught by a signed Checkpoint taken earlier.
//
// Payload rule: an audit payload holds ids and hashes only, never raw PII. Subject ids,
// list values (emails, IPs, card fingerprints) and documents go in as SHA-256 hex
// (SubjectRef, "value_sha256", "input_sha256"), so erasing personal data elsewhere never
// requires touching, and so breaking, the chain. The payload builders in events.go follow
// the rule; a caller building its own payload is responsible for it.

// CanonicalJSON re-encodes a JSON document canonically, so that equal documents have equal
// bytes whatever the database did to their text: no insignificant whitespace, object
// members sorted by key (bytewise; for a repeated key the last one wins), strings escaped
// minimally (no HTML escaping; invalid UTF-8 replaced with U+FFFD), numbers as IEEE-754
// doubles in their shortest form as encoding/json writes them (the ECMAScript form RFC 8785
// uses). Integers beyond 2^53 lose precision: write big ids as strings. The result is what
// encoding/json produces when decoding raw into an `any` and encoding it back without HTML
// escaping. It returns an error when raw is not exactly one JSON value.
func CanonicalJSON(raw []byte) ([]byte, error) {
	out, err := appendCanonical(make([]byte, 0, len(raw)), raw)
	if err != nil {
		return nil, fmt.Errorf("canonicalize json: %w", err)
	}
	return out, nil
}

// CanonicalEvent returns the bytes an event's hash covers: compact JSON with the keys
// seq, time (RFC 3339 with nanoseconds, UTC), type, actor, correlation_id, subject_ref and
// payload, in that order, the payload re-encoded with CanonicalJSON. PrevHash and Hash are
// not part of it. An empty payload is encoded as null; a payload that is not valid JSON
// (which LinkEvent never stores) as the string "invalid-json:<hex of its bytes>", so that
// it still hashes deterministically and never like a valid object.
func CanonicalEvent(ev AuditEvent) []byte {
	return appendCanonicalEvent(make([]byte, 0, 192+len(ev.Payload)), ev, false)
}

// appendCanonicalEvent appends the canonical form of ev; canonicalPayload says that
// ev.Payload is known to be canonical already and is copied as is.
func appendCanonicalEvent(dst []byte, ev AuditEvent, canonicalPayload bool) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendInt(dst, ev.Seq, 10)
	dst = append(dst, `,"time":"`...)
	dst = ev.Time.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","type":`...)
	dst = appendJSONString(dst, ev.Type)
	dst = append(dst, `,"actor":`...)
	dst = appendJSONString(dst, ev.Actor)
	dst = append(dst, `,"correlation_id":`...)
	dst = appendJSONString(dst, ev.CorrelationID)
	dst = append(dst, `,"subject_ref":`...)
	dst = appendJSONString(dst, ev.SubjectRef)
	dst = append(dst, `,"payload":`...)
	if canonicalPayload {
		dst = append(dst, ev.Payload...)
	} else {
		dst = appendCanonicalPayload(dst, ev.Payload)
	}
	return append(dst, '}')
}

func appendCanonicalPayload(dst, p []byte) []byte {
	if len(bytes.TrimSpace(p)) == 0 {
		return append(dst, "null"...)
	}
	out, err := appendCanonical(dst, p)
	if err != nil {
		return appendJSONString(dst, "invalid-json:"+hex.EncodeToString(p))
	}
	return out
}

// ChainHash returns SHA-256(prev || CanonicalEvent(ev)): the hash ev must carry when it
// follows an event whose hash is prev (empty for the first event).
func ChainHash(prev []byte, ev AuditEvent) []byte {
	return chainHash(prev, ev, false)
}

func chainHash(prev []byte, ev AuditEvent, canonicalPayload bool) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(appendCanonicalEvent(make([]byte, 0, 192+len(ev.Payload)), ev, canonicalPayload))
	return h.Sum(nil)
}

// LinkEvent prepares ev for appending after the event (prevSeq, prevHash), where (0, nil)
// means ev is the first event: it sets Seq to prevSeq+1, PrevHash to prevHash, Time to UTC
// truncated to microseconds (the precision every store keeps), Payload to its canonical
// form and Hash to the chain hash. Stores call it inside the transaction that holds the
// chain head. It returns an error wrapping ErrInvalidRecord when the payload is not a JSON
// object.
func LinkEvent(ev *AuditEvent, prevSeq int64, prevHash []byte) error {
	payload, err := CanonicalJSON(ev.Payload)
	if err != nil || len(payload) == 0 || payload[0] != '{' {
		return fmt.Errorf("%w: audit event %q: payload is not a JSON object", ErrInvalidRecord, ev.Type)
	}
	ev.Seq = prevSeq + 1
	ev.Time = ev.Time.UTC().Truncate(time.Microsecond)
	ev.Payload = payload
	ev.PrevHash = nil
	if len(prevHash) > 0 {
		ev.PrevHash = bytes.Clone(prevHash)
	}
	ev.Hash = chainHash(ev.PrevHash, *ev, true)
	return nil
}

// BrokenLinkError names the first event at which an audit chain does not verify.
type BrokenLinkError struct {
	Seq    int64  // the first sequence number at which the chain is broken
	Reason string // what is wrong there
}

// Error implements error.
func (e *BrokenLinkError) Error() string {
	return fmt.Sprintf("audit chain broken at seq %d: %s", e.Seq, e.Reason)
}

// verifyPageSize is how many events VerifyChain reads per call to AuditEvents.
const verifyPageSize = 1000

// VerifyChain reads the whole log in pages and recomputes the chain. It returns the last
// verified sequence number and hash, which match AuditHead. The first broken link is
// reported as a *BrokenLinkError: a sequence gap, a prev_hash that is not the previous
// event's hash, a hash that does not match the event's content, or a head (AuditHead) that
// disagrees with the events. Read errors are returned wrapped. Events appended while it
// runs are verified too.
//
// VerifyChain proves the log is self-consistent. It cannot tell a chain truncated at the end
// or rewritten wholesale by someone able to recompute every hash: VerifyCheckpoint does.
func VerifyChain(ctx context.Context, log AuditLog) (seq int64, head []byte, err error) {
	for {
		evs, err := log.AuditEvents(ctx, seq, verifyPageSize)
		if err != nil {
			return seq, head, fmt.Errorf("verify audit chain: read events after seq %d: %w", seq, err)
		}
		for _, ev := range evs {
			if err := checkLink(seq, head, ev); err != nil {
				return seq, head, err
			}
			seq, head = ev.Seq, ev.Hash
		}
		if len(evs) >= verifyPageSize {
			continue
		}
		headSeq, headHash, err := log.AuditHead(ctx)
		if err != nil {
			return seq, head, fmt.Errorf("verify audit chain: read head: %w", err)
		}
		switch {
		case headSeq == seq:
			if !bytes.Equal(headHash, head) {
				return seq, head, &BrokenLinkError{Seq: seq, Reason: "recorded head hash differs from the event's hash"}
			}
			return seq, head, nil
		case headSeq < seq:
			return seq, head, &BrokenLinkError{
				Seq:    headSeq + 1,
				Reason: fmt.Sprintf("event stored beyond the recorded head (seq %d)", headSeq),
			}
		}
		// The head moved on: either events were appended since the page was read, and they
		// are visible now that their head is, or they are missing.
		more, err := log.AuditEvents(ctx, seq, 1)
		if err != nil {
			return seq, head, fmt.Errorf("verify audit chain: read events after seq %d: %w", seq, err)
		}
		if len(more) == 0 {
			return seq, head, &BrokenLinkError{
				Seq:    seq + 1,
				Reason: fmt.Sprintf("event missing: the recorded head is at seq %d", headSeq),
			}
		}
	}
}

// checkLink verifies that ev correctly follows the event (prevSeq, prevHash).
func checkLink(prevSeq int64, prevHash []byte, ev AuditEvent) error {
	if ev.Seq == prevSeq && prevSeq > 0 {
		return &BrokenLinkError{Seq: ev.Seq, Reason: fmt.Sprintf("seq %d is stored twice", ev.Seq)}
	}
	if ev.Seq != prevSeq+1 {
		return &BrokenLinkError{
			Seq:    prevSeq + 1,
			Reason: fmt.Sprintf("sequence gap: the event after seq %d has seq %d", prevSeq, ev.Seq),
		}
	}
	if !bytes.Equal(ev.PrevHash, prevHash) {
		return &BrokenLinkError{Seq: ev.Seq, Reason: "prev_hash is not the previous event's hash"}
	}
	if !bytes.Equal(ev.Hash, ChainHash(prevHash, ev)) {
		return &BrokenLinkError{Seq: ev.Seq, Reason: "hash does not match the event's content"}
	}
	return nil
}

// ErrCheckpointSignature is returned (wrapped) by VerifyCheckpoint when the checkpoint's
// signature does not verify with the given public key.
var ErrCheckpointSignature = errors.New("checkpoint signature does not verify")

// Checkpoint is a signed statement that the audit chain had head hash Head at sequence Seq
// at Time. Published or stored outside the database, it lets VerifyCheckpoint detect a
// rollback of the log or a rewrite of its first Seq events. In JSON, Head and Signature are
// hex strings and Time is RFC 3339 in UTC.
type Checkpoint struct {
	Seq       int64
	Head      []byte
	Time      time.Time
	Signature []byte // Ed25519 over the checkpoint's seq, head and time
}

type checkpointJSON struct {
	Seq       int64     `json:"seq"`
	Head      string    `json:"head"`
	Time      time.Time `json:"time"`
	Signature string    `json:"signature"`
}

// MarshalJSON encodes the checkpoint with hex Head and Signature.
func (c Checkpoint) MarshalJSON() ([]byte, error) {
	return json.Marshal(checkpointJSON{
		Seq:       c.Seq,
		Head:      hex.EncodeToString(c.Head),
		Time:      c.Time.UTC(),
		Signature: hex.EncodeToString(c.Signature),
	})
}

// UnmarshalJSON decodes a checkpoint written by MarshalJSON. It returns an error when Head
// or Signature is not hex.
func (c *Checkpoint) UnmarshalJSON(b []byte) error {
	var j checkpointJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("decode checkpoint: %w", err)
	}
	head, err := hex.DecodeString(j.Head)
	if err != nil {
		return fmt.Errorf("decode checkpoint head: %w", err)
	}
	sig, err := hex.DecodeString(j.Signature)
	if err != nil {
		return fmt.Errorf("decode checkpoint signature: %w", err)
	}
	*c = Checkpoint{Seq: j.Seq, Head: head, Time: j.Time.UTC(), Signature: sig}
	return nil
}

// checkpointMessage is what a checkpoint signature covers. The prefix keeps a checkpoint
// signature from being valid for anything else signed with the same key.
func checkpointMessage(seq int64, head []byte, t time.Time) []byte {
	msg := []byte("verdict.audit.checkpoint.v1\n")
	msg = strconv.AppendInt(msg, seq, 10)
	msg = append(msg, '\n')
	msg = hex.AppendEncode(msg, head)
	msg = append(msg, '\n')
	return t.UTC().AppendFormat(msg, time.RFC3339Nano)
}

// SignCheckpoint signs the chain position (seq, head) at time t with priv. seq and head
// would normally come from VerifyChain, so that only a verified chain is vouched for.
func SignCheckpoint(priv ed25519.PrivateKey, seq int64, head []byte, t time.Time) Checkpoint {
	t = t.UTC()
	return Checkpoint{
		Seq:       seq,
		Head:      bytes.Clone(head),
		Time:      t,
		Signature: ed25519.Sign(priv, checkpointMessage(seq, head, t)),
	}
}

// VerifyCheckpoint checks that cp is signed by pub (else an error wrapping
// ErrCheckpointSignature), that the log has not been rolled back below cp.Seq and that the
// event at cp.Seq still has hash cp.Head and matches its content (else a *BrokenLinkError
// naming cp.Seq). Together with VerifyChain, a nil result proves that the first cp.Seq events
// are the ones that existed when cp was signed. Read errors are returned wrapped.
func VerifyCheckpoint(ctx context.Context, pub ed25519.PublicKey, cp Checkpoint, log AuditLog) error {
	if len(pub) != ed25519.PublicKeySize ||
		!ed25519.Verify(pub, checkpointMessage(cp.Seq, cp.Head, cp.Time), cp.Signature) {
		return fmt.Errorf("verify checkpoint at seq %d: %w", cp.Seq, ErrCheckpointSignature)
	}
	headSeq, _, err := log.AuditHead(ctx)
	if err != nil {
		return fmt.Errorf("verify checkpoint at seq %d: read head: %w", cp.Seq, err)
	}
	if headSeq < cp.Seq {
		return &BrokenLinkError{
			Seq:    cp.Seq,
			Reason: fmt.Sprintf("log rolled back: head is at seq %d, below the signed checkpoint", headSeq),
		}
	}
	if cp.Seq == 0 {
		return nil
	}
	evs, err := log.AuditEvents(ctx, cp.Seq-1, 1)
	if err != nil {
		return fmt.Errorf("verify checkpoint at seq %d: read event: %w", cp.Seq, err)
	}
	if len(evs) == 0 || evs[0].Seq != cp.Seq {
		return &BrokenLinkError{Seq: cp.Seq, Reason: "the checkpointed event is missing"}
	}
	if len(evs) > 1 {
		return &BrokenLinkError{Seq: cp.Seq, Reason: fmt.Sprintf("seq %d is stored twice", cp.Seq)}
	}
	ev := evs[0]
	if !bytes.Equal(ev.Hash, cp.Head) {
		return &BrokenLinkError{Seq: cp.Seq, Reason: "hash differs from the signed checkpoint"}
	}
	if !bytes.Equal(ev.Hash, ChainHash(ev.PrevHash, ev)) {
		return &BrokenLinkError{Seq: cp.Seq, Reason: "hash does not match the event's content"}
	}
	return nil
}
