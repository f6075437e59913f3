package http

import (
	"encoding/json"
	"strconv"

	"github.com/verdict-engine/verdict/engine"
)

// decideResponseSize is the buffer to encode a decideResponse into: an answer with two
// reasons and a policy hash takes about 600 bytes.
const decideResponseSize = 1024

// appendJSON appends the JSON encoding of r to dst: exactly the bytes of json.Marshal(r),
// which the tests hold byte-identical, including under fuzzing. It exists for the decide
// hot path, where encoding/json's reflection cost about 3% of the server's CPU.
//
// The struct layout is written out by hand, so a field added to decideResponse,
// policyRef, degraded or engine.Reason must be added here too; the comparison tests
// fail until it is.
//
// Anything it does not write itself (a reason value of an unusual type) goes through
// engine.AppendJSONValue, which falls back to json.Marshal. When encoding fails (a NaN
// or infinite number, an invalid outcome, a time json.Marshal refuses), the whole
// response is handed to json.Marshal, so the error is exactly its error; dst is then
// returned unchanged.
func (r *decideResponse) appendJSON(dst []byte) ([]byte, error) {
	if r == nil {
		return append(dst, "null"...), nil
	}
	b, ok := r.appendFast(dst)
	if ok {
		return b, nil
	}
	// Something could not be encoded here: let json.Marshal decide, and return its
	// error (or, should it succeed after all, its bytes).
	j, err := json.Marshal(r)
	if err != nil {
		return dst, err
	}
	return append(dst, j...), nil
}

// appendFast writes r field by field; ok is false when some value could not be encoded,
// in which case b holds partial output past len(dst) and must be discarded.
func (r *decideResponse) appendFast(dst []byte) (b []byte, ok bool) {
	b = append(dst, `{"decision_id":`...)
	b = engine.AppendJSONString(b, r.DecisionID)
	b = append(b, `,"action":`...)
	b = engine.AppendJSONString(b, r.Action)
	b = append(b, `,"outcome":`...)
	if b, ok = appendOutcome(b, r.Outcome); !ok {
		return b, false
	}
	b = append(b, `,"score":`...)
	var err error
	if b, err = engine.AppendJSONFloat(b, r.Score); err != nil {
		return b, false
	}
	b = append(b, `,"reasons":`...)
	if r.Reasons == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range r.Reasons {
			if i > 0 {
				b = append(b, ',')
			}
			if b, ok = appendReason(b, &r.Reasons[i]); !ok {
				return b, false
			}
		}
		b = append(b, ']')
	}
	if r.StepUp != "" {
		b = append(b, `,"step_up":`...)
		b = engine.AppendJSONString(b, r.StepUp)
	}
	b = append(b, `,"policy":{"action":`...)
	b = engine.AppendJSONString(b, r.Policy.Action)
	b = append(b, `,"version":`...)
	b = engine.AppendJSONString(b, r.Policy.Version)
	b = append(b, `,"hash":`...)
	b = engine.AppendJSONString(b, r.Policy.Hash)
	b = append(b, `},"signals_unavailable":`...)
	b = engine.AppendJSONStrings(b, r.SignalsUnavailable)
	if d := r.Degraded; d != nil {
		b = append(b, `,"degraded":{"fail_mode":`...)
		b = engine.AppendJSONString(b, d.FailMode)
		b = append(b, `,"causes":`...)
		b = engine.AppendJSONStrings(b, d.Causes)
		b = append(b, `,"stored":`...)
		b = strconv.AppendBool(b, d.Stored)
		b = append(b, '}')
	}
	// time.Time encodes through its MarshalJSON: AppendText's RFC 3339 text in quotes,
	// with the same refusals (a year outside 0..9999, a zone offset of 24 hours or more).
	// encoding/json compacts a marshaler's output, which cannot change these bytes.
	b = append(b, `,"created_at":"`...)
	if b, err = r.CreatedAt.AppendText(b); err != nil {
		return b, false
	}
	return append(b, `"}`...), true
}

func appendReason(b []byte, rs *engine.Reason) ([]byte, bool) {
	b = append(b, `{"code":`...)
	b = engine.AppendJSONString(b, rs.Code)
	b = append(b, `,"outcome":`...)
	var ok bool
	if b, ok = appendOutcome(b, rs.Outcome); !ok {
		return b, false
	}
	b = append(b, `,"message":`...)
	b = engine.AppendJSONString(b, rs.Message)
	if rs.Signal != "" {
		b = append(b, `,"signal":`...)
		b = engine.AppendJSONString(b, rs.Signal)
	}
	// omitempty on an interface field omits only a nil interface: a non-nil 0, "" or
	// false is written.
	var err error
	if rs.Value != nil {
		b = append(b, `,"value":`...)
		if b, err = engine.AppendJSONValue(b, rs.Value); err != nil {
			return b, false
		}
	}
	if rs.Threshold != nil {
		b = append(b, `,"threshold":`...)
		if b, err = engine.AppendJSONValue(b, rs.Threshold); err != nil {
			return b, false
		}
	}
	return append(b, '}'), true
}

// appendOutcome writes o as its MarshalText does: the wire name, quoted. An invalid
// outcome makes MarshalText (and so json.Marshal) fail.
func appendOutcome(b []byte, o engine.Outcome) ([]byte, bool) {
	if !o.Valid() {
		return b, false
	}
	return engine.AppendJSONString(b, o.String()), true
}
