package redis

import goredis "github.com/redis/go-redis/v9"

// SetScriptSuffix makes v run its script with suffix appended (a Lua comment), which gives
// it a digest the server has never seen: tests use it to exercise the NOSCRIPT fallback
// without flushing the script cache of a shared server.
func SetScriptSuffix(v *Velocity, suffix string) {
	v.script = goredis.NewScript(observeLua + suffix)
}
