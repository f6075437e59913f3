package redis

// observeLua records one event for one entity (a user, a device or an IP) and returns its
// counts. All its keys share the entity's hash tag, so it runs on one Redis Cluster slot,
// and Redis runs it atomically: concurrent events never lose an increment.
//
//	KEYS[1]  sorted set of the entity's events of one action: member event id, score ms
//	KEYS[2]  sorted set of the distinct others seen in 24 h: member id, score last seen ms
//	KEYS[3]  (device) the same over 30 d
//	KEYS[4]  (device) string "<ms>:<event id>" of the event that first saw the device
//	ARGV[1]  event time at, Unix ms
//	ARGV[2]  event id
//	ARGV[3]  the other entity to add to KEYS[2] and KEYS[3] ("" for none)
//	ARGV[4]  "(" at-1m, ARGV[5] "(" at-1h: exclusive lower bounds of the windows
//	ARGV[6]  at-24h, ARGV[7] at-30d: scores at or below them are pruned
//
// (The bounds are computed by the caller: formatting numbers in Lua costs more than the
// commands it feeds.)
//
// Pruning comes before recording, so the event itself is always counted: an id observed
// again is not recorded again unless its first record fell out of the 24 h window.
//
// It returns {count 1m, count 1h, count 24h, distinct 24h, distinct 30d, first seen ms,
// device known (0 or 1)}; the last three are 0 when their keys are not passed. A window
// of length w covers the scores above at-w, including events stamped after at that were
// recorded first (concurrent requests), so n concurrent events see the counts 1..n. Every key touched gets a TTL of its window
// (by the server clock) so that idle keys expire by themselves; counting itself uses the
// event time only.
const observeLua = `
local at = ARGV[1]
local id = ARGV[2]
local other = ARGV[3]
local r = {0, 0, 0, 0, 0, 0, 0}

local c = KEYS[1]
redis.call('ZREMRANGEBYSCORE', c, '-inf', ARGV[6])
redis.call('ZADD', c, 'NX', at, id)
r[1] = redis.call('ZCOUNT', c, ARGV[4], '+inf')
r[2] = redis.call('ZCOUNT', c, ARGV[5], '+inf')
r[3] = redis.call('ZCARD', c)
redis.call('PEXPIRE', c, 86400000)

local function distinct(key, cut, ttl)
  if other ~= '' then
    redis.call('ZADD', key, 'GT', at, other)
  end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', cut)
  redis.call('PEXPIRE', key, ttl)
  return redis.call('ZCARD', key)
end
if KEYS[2] then r[4] = distinct(KEYS[2], ARGV[6], 86400000) end
if KEYS[3] then r[5] = distinct(KEYS[3], ARGV[7], 2592000000) end

if KEYS[4] then
  local first = redis.call('GET', KEYS[4])
  if not first then
    redis.call('SET', KEYS[4], at .. ':' .. id, 'PX', 2592000000)
    r[6] = tonumber(at)
  else
    local sep = string.find(first, ':', 1, true)
    r[6] = tonumber(string.sub(first, 1, sep - 1))
    if string.sub(first, sep + 1) ~= id then r[7] = 1 end
    redis.call('PEXPIRE', KEYS[4], 2592000000)
  end
end
return r
`
