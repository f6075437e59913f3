package store

import "errors"

// ErrInvalidRecord is returned (wrapped, naming the record and the field) for a record a
// store refuses before touching the database: empty required ids, strings that are not
// valid UTF-8 or contain NUL bytes, JSON documents that do not parse, non-finite scores.
// In WriteDecisions it fills the slot of the offending record only; the others are
// written.
var ErrInvalidRecord = errors.New("invalid record")

// ErrConflict is returned (wrapped) when the database refuses a write because a record with
// the same primary key already exists, such as a decision id written twice. It is a
// programming error on the caller's side, not an outage.
var ErrConflict = errors.New("conflicting record")

// ErrClosed is returned by GroupCommitter.Commit once Close has been called.
var ErrClosed = errors.New("group committer closed")
