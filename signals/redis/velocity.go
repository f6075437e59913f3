// Package redis holds Velocity, the Redis implementation of signals.Velocity: counters
// shared by every replica, one network round trip per event, Redis Cluster ready.
//
// Each event runs one Lua script per entity (user, device, IP), all in one pipeline. A
// script touches only keys of its entity, which share a hash tag and so a cluster slot:
//
//	<prefix>{u:<user>}:c:<action>    events of the user for the action (member event id, score ms)
//	<prefix>{u:<user>}:dev           devices of the user (member device, score last seen ms)
//	<prefix>{d:<device>}:c:<action>  events of the device for the action
//	<prefix>{d:<device>}:users       users of the device, 24 h
//	<prefix>{d:<device>}:users30     users of the device, 30 d
//	<prefix>{d:<device>}:first       "<ms>:<event id>" of the event that first saw the device
//	<prefix>{ip:<hash>}:c:<action>   events of the IP for the action
//	<prefix>{ip:<hash>}:users        users of the IP, 24 h
//
// where <hash> is the first 16 hex digits of the SHA-256 of the IP (an IP is personal
// data; user and device ids are taken to be opaque) and '%' and '}' in ids are escaped.
// Every key expires by itself after its window without events (24 h; 30 d for a device's
// users30 and first). Scores are event times, so counts do not depend on the server clock.
// It needs Redis 6.2 or later (ZADD GT).
package redis

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/signals"
)

// ErrInvalidEvent is returned (wrapped) by Observe for an event without an ID or without a
// time: without an ID, recording cannot be idempotent.
var ErrInvalidEvent = errors.New("invalid velocity event")

// DefaultPrefix is the key prefix used without WithPrefix.
const DefaultPrefix = "verdict:velocity:"

var _ signals.Velocity = (*Velocity)(nil)

// Velocity counts events in Redis. It is safe for concurrent use; create it with New.
type Velocity struct {
	client goredis.UniversalClient
	prefix string
	script *goredis.Script
}

// Option configures a Velocity.
type Option func(*options)

type options struct {
	prefix string
}

// WithPrefix sets the prefix of every key (default DefaultPrefix), so that tenants, tests
// or environments sharing a Redis keep their counters apart. It must not contain '{' or
// '}', which would change the keys' hash tags.
func WithPrefix(prefix string) Option {
	return func(o *options) { o.prefix = prefix }
}

// New returns a Velocity that counts in the Redis behind client; it does no I/O.
//
// The client must honor context deadlines (ContextTimeoutEnabled in its options; go-redis
// otherwise ignores them and a slow server would hold Observe for the client's read
// timeout): New returns an error for a *Client, *ClusterClient or *Ring without it, and
// for a prefix containing '{' or '}'. The caller keeps ownership of client and closes it.
func New(client goredis.UniversalClient, opts ...Option) (*Velocity, error) {
	o := options{prefix: DefaultPrefix}
	for _, opt := range opts {
		opt(&o)
	}
	if client == nil {
		return nil, errors.New("new redis velocity: nil client")
	}
	if strings.ContainsAny(o.prefix, "{}") {
		return nil, fmt.Errorf("new redis velocity: key prefix %q contains '{' or '}'", o.prefix)
	}
	if !honorsContext(client) {
		return nil, errors.New("new redis velocity: the client ignores context deadlines: set ContextTimeoutEnabled in its options")
	}
	return &Velocity{client: client, prefix: o.prefix, script: goredis.NewScript(observeLua)}, nil
}

func honorsContext(client goredis.UniversalClient) bool {
	switch c := client.(type) {
	case *goredis.Client:
		return c.Options().ContextTimeoutEnabled
	case *goredis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	case *goredis.Ring:
		return c.Options().ContextTimeoutEnabled
	}
	return true // a wrapper we cannot look into: its owner answers for it
}

// Load loads the script into Redis (into every primary of a cluster). It is optional: the
// first Observe after a server restart or SCRIPT FLUSH otherwise falls back to sending the
// script itself, which takes a second round trip once.
func (v *Velocity) Load(ctx context.Context) error {
	if err := v.script.Load(ctx, v.client).Err(); err != nil {
		return fmt.Errorf("load velocity script: %w", err)
	}
	return nil
}

// EvictionRisk reads INFO memory and says whether Redis may evict this package's keys:
// with a maxmemory limit, every policy but noeviction evicts keys that carry a TTL, and all
// of these do. Counts would then drop without an error, and a burst of payouts or logins
// slip under its policy's threshold. With noeviction a full Redis refuses writes instead,
// which decisions see (signals.unavailable and the action's fail mode). It returns "" when
// Redis evicts nothing, else what it found (for a log line). INFO is used rather than
// CONFIG GET, which managed services often refuse.
func (v *Velocity) EvictionRisk(ctx context.Context) (string, error) {
	info, err := v.client.Info(ctx, "memory").Result()
	if err != nil {
		return "", fmt.Errorf("read redis memory settings: %w", err)
	}
	var maxmemory, policy string
	for line := range strings.Lines(info) {
		k, val, _ := strings.Cut(strings.TrimSpace(line), ":")
		switch k {
		case "maxmemory":
			maxmemory = val
		case "maxmemory_policy":
			policy = val
		}
	}
	if policy == "" || maxmemory == "" {
		return "", errors.New("read redis memory settings: INFO memory has no maxmemory or maxmemory_policy")
	}
	if maxmemory == "0" || policy == "noeviction" {
		return "", nil
	}
	return fmt.Sprintf("maxmemory %s bytes with maxmemory-policy %s", maxmemory, policy), nil
}

// Observe records ev and returns the counts that include it, as documented on
// signals.Velocity, in one pipeline of up to three script calls (one per non-empty id).
// An entity whose id is empty is neither recorded nor counted: its window is zero. An event
// whose ID is already recorded for an entity is not counted again there; Observe then
// returns the counts as they stand at ev.At, and DeviceKnown is false again if that event
// was the one that first saw the device. DeviceFirstSeen has millisecond resolution and is
// in UTC.
//
// Observe returns an error wrapping ErrInvalidEvent for an event without ID or time, and a
// wrapped Redis, network or context error otherwise, as soon as ctx is done at the latest.
// After an error some entities may have been recorded and others not; observing the same
// event again is safe and completes it.
func (v *Velocity) Observe(ctx context.Context, ev signals.Event) (signals.Observation, error) {
	switch {
	case ev.ID == "":
		return signals.Observation{}, fmt.Errorf("observe event: %w: empty id", ErrInvalidEvent)
	case ev.At.IsZero():
		return signals.Observation{}, fmt.Errorf("observe event %q: %w: zero time", ev.ID, ErrInvalidEvent)
	}
	if err := ctx.Err(); err != nil {
		return signals.Observation{}, fmt.Errorf("observe event %q: %w", ev.ID, err)
	}
	at := ev.At.UnixMilli()
	day := (24 * time.Hour).Milliseconds()
	bounds := [...]any{
		"(" + strconv.FormatInt(at-time.Minute.Milliseconds(), 10),
		"(" + strconv.FormatInt(at-time.Hour.Milliseconds(), 10),
		at - day,
		at - 30*day,
	}
	var (
		calls [3]call
		n     int
	)
	// Each call's args (see observeLua): event time, event id, the other entity for its
	// distinct sets, and the window bounds.
	if ev.UserID != "" {
		tag := v.tag("u:", escape(ev.UserID))
		calls[n] = call{kind: user, keys: []string{tag + ":c:" + ev.Action, tag + ":dev"}, args: []any{at, ev.ID, ev.DeviceID, bounds[0], bounds[1], bounds[2], bounds[3]}}
		n++
	}
	if ev.DeviceID != "" {
		tag := v.tag("d:", escape(ev.DeviceID))
		calls[n] = call{kind: device, keys: []string{tag + ":c:" + ev.Action, tag + ":users", tag + ":users30", tag + ":first"}, args: []any{at, ev.ID, ev.UserID, bounds[0], bounds[1], bounds[2], bounds[3]}}
		n++
	}
	if ev.IP != "" {
		tag := v.tag("ip:", hashIP(ev.IP))
		calls[n] = call{kind: ip, keys: []string{tag + ":c:" + ev.Action, tag + ":users"}, args: []any{at, ev.ID, ev.UserID, bounds[0], bounds[1], bounds[2], bounds[3]}}
		n++
	}
	if n == 0 {
		return signals.Observation{}, nil
	}
	if err := v.run(ctx, calls[:n]); err != nil {
		return signals.Observation{}, fmt.Errorf("observe event %q in redis: %w", ev.ID, err)
	}

	var obs signals.Observation
	for _, c := range calls[:n] {
		r, err := c.cmd.Int64Slice()
		if err == nil && len(r) != 7 {
			err = fmt.Errorf("script returned %d values, want 7", len(r))
		}
		if err != nil {
			return signals.Observation{}, fmt.Errorf("observe event %q in redis: %w", ev.ID, err)
		}
		w := engine.Window{Count1m: r[0], Count1h: r[1], Count24h: r[2]}
		switch c.kind {
		case user:
			w.DistinctDevices24h = r[3]
			obs.User = w
		case device:
			w.DistinctUsers24h = r[3]
			obs.Device = w
			obs.DeviceUsers30d = r[4]
			obs.DeviceFirstSeen = time.UnixMilli(r[5]).UTC()
			obs.DeviceKnown = r[6] == 1
		case ip:
			w.DistinctUsers24h = r[3]
			obs.IP = w
		}
	}
	return obs, nil
}

type kind uint8

const (
	user kind = iota
	device
	ip
)

// call is one script invocation of an Observe.
type call struct {
	kind kind
	keys []string
	args []any
	cmd  *goredis.Cmd
}

// run sends calls as EVALSHA in one pipeline. Calls Redis answers with NOSCRIPT (the
// script cache was flushed, or the server restarted) did nothing; they are sent again
// with the script body, which also caches it for the next ones.
func (v *Velocity) run(ctx context.Context, calls []call) error {
	pipe := v.client.Pipeline()
	for i := range calls {
		calls[i].cmd = v.script.EvalSha(ctx, pipe, calls[i].keys, calls[i].args...)
	}
	if _, err := pipe.Exec(ctx); err == nil {
		return nil
	}
	retry := v.client.Pipeline()
	for i := range calls {
		err := calls[i].cmd.Err()
		switch {
		case err == nil:
		case isNoScript(err):
			calls[i].cmd = v.script.Eval(ctx, retry, calls[i].keys, calls[i].args...)
		default:
			return err
		}
	}
	_, err := retry.Exec(ctx)
	return err
}

func isNoScript(err error) bool {
	return errors.Is(err, goredis.ErrNoScript) || goredis.HasErrorPrefix(err, "NOSCRIPT")
}

// tag returns the key prefix with the hash tag of an entity.
func (v *Velocity) tag(entity, id string) string {
	return v.prefix + "{" + entity + id + "}"
}

// escape makes an id safe inside a hash tag: a '}' would end the tag early, and then two
// different (id, action) pairs could make the same key.
func escape(id string) string {
	if !strings.ContainsAny(id, "%}") {
		return id
	}
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		switch id[i] {
		case '%':
			b.WriteString("%25")
		case '}':
			b.WriteString("%7D")
		default:
			b.WriteByte(id[i])
		}
	}
	return b.String()
}

// hashIP returns the first 16 hex digits of the SHA-256 of ip: keys do not hold the IP.
func hashIP(ip string) string {
	sum := sha256.Sum256([]byte(ip))
	return hex.EncodeToString(sum[:8])
}
