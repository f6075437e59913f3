package signals

import (
	"context"
	"time"

	"github.com/verdict-engine/verdict/engine"
)

// Event is one decision request as velocity counters see it. Empty ids are not counted.
type Event struct {
	ID       string // unique per decision; makes recording idempotent per event
	Action   string
	UserID   string
	DeviceID string
	IP       string
	At       time.Time
}

// Observation is what velocity counting returns for one event: the sliding-window counts
// of its user, device and IP including the event itself, and the device's reputation.
type Observation struct {
	User   engine.Window
	Device engine.Window
	IP     engine.Window
	// DeviceKnown is false when this event is the first one ever seen for the device.
	DeviceKnown bool
	// DeviceFirstSeen is when the device was first seen (ev.At for a new device).
	DeviceFirstSeen time.Time
	// DeviceUsers30d is the number of distinct users seen on the device in 30 days.
	DeviceUsers30d int64
}

// Velocity records events and counts them over sliding windows (1 m, 1 h, 24 h per
// action; distinct users per device and IP and distinct devices per user over 24 h across
// actions; distinct users per device over 30 d). Implementations: velocity.Memory
// (in-process default) and redis.Velocity (one round trip per event).
type Velocity interface {
	// Observe atomically records ev and returns the counts that include it. Concurrent
	// calls never lose an increment: n concurrent events for one user see n distinct
	// Count1m values.
	Observe(ctx context.Context, ev Event) (Observation, error)
}
