package redis

import goredis "github.com/redis/go-redis/v9"

// The Lua scripts. Each touches the keys of one session ID only (which
// share a hash tag) or the fleet key only, so each runs on one Redis Cluster
// node. A lease's value is "token owner".

// A fencing counter's TTL is only ever lengthened (PTTL then PEXPIRE, which
// works on Redis before 7's PEXPIRE GT): an acquire with a short lease must
// not let the counter expire, and restart at 1, before the state and the
// tokens written with it.

// acquire: KEYS lease, fence, state; ARGV owner, lease ttl ms, create (0/1),
// fence ttl ms, if-stored (0/1). Returns {1, token[, state]} when granted
// (the holder asking again gets its token back), {0, token, owner} when
// another owner holds it, {2} when create is set and state exists, {3} when
// if-stored is set and no state exists (nothing is taken).
var acquireScript = goredis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then
  local sp = string.find(cur, ' ', 1, true)
  local tok = string.sub(cur, 1, sp - 1)
  local owner = string.sub(cur, sp + 1)
  if owner ~= ARGV[1] then return {0, tok, owner} end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  if ARGV[3] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then return {2} end
  if ARGV[5] == '1' and redis.call('EXISTS', KEYS[3]) == 0 then return {3} end
  local tok = redis.call('INCR', KEYS[2])
  if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[4]) then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
  redis.call('SET', KEYS[1], tok .. ' ' .. ARGV[1], 'PX', ARGV[2])
  cur = tok .. ' ' .. ARGV[1]
end
local sp = string.find(cur, ' ', 1, true)
local st = redis.call('GET', KEYS[3])
if st then return {1, string.sub(cur, 1, sp - 1), st} end
return {1, string.sub(cur, 1, sp - 1)}
`)

// renew: KEYS lease; ARGV "token owner", ttl ms. Returns 1 if still held.
var renewScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`)

// release: KEYS lease; ARGV "token owner". Deletes the lease if still held.
var releaseScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`)

// save: KEYS fence, state, lease; ARGV token, state, state ttl ms, release
// (0/1), "token owner", fence ttl ms. Refuses (0) when the fence has passed
// the token: a newer lease was granted.
var saveScript = goredis.NewScript(`
local f = tonumber(redis.call('GET', KEYS[1]) or '0')
if f > tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
if f > 0 and redis.call('PTTL', KEYS[1]) < tonumber(ARGV[6]) then redis.call('PEXPIRE', KEYS[1], ARGV[6]) end
if ARGV[4] == '1' and redis.call('GET', KEYS[3]) == ARGV[5] then redis.call('DEL', KEYS[3]) end
return 1
`)

// del: KEYS fence, state, lease; ARGV token, "token owner". Returns {1} when
// deleted, {0, lease} when token is 0 and a lease is held, {2} when fenced.
var deleteScript = goredis.NewScript(`
local cur = redis.call('GET', KEYS[3])
if tonumber(ARGV[1]) == 0 then
  if cur then return {0, cur} end
else
  local f = tonumber(redis.call('GET', KEYS[1]) or '0')
  if f > tonumber(ARGV[1]) then return {2} end
end
redis.call('DEL', KEYS[2])
if cur and cur == ARGV[2] then redis.call('DEL', KEYS[3]) end
return {1}
`)

// fleetReserve: KEYS fleet; ARGV member, max, ttl ms. Drops expired
// members, then adds or refreshes member if the count allows. Returns 1 if
// member holds a slot, 0 at the cap. Scores are expiries in the server's
// milliseconds, so the clocks of the fleet's processes do not matter.
var fleetReserveScript = goredis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
return 1
`)

// fleetRenew: KEYS fleet; ARGV ttl ms, members... Moves the expiry of the
// members still present; returns how many were.
var fleetRenewScript = goredis.NewScript(`
local t = redis.call('TIME')
local exp = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
local n = 0
for i = 2, #ARGV do
  n = n + redis.call('ZADD', KEYS[1], 'XX', 'CH', exp, ARGV[i])
end
return n
`)

// renewMany: KEYS leases; ARGV ttl ms, then "token owner" per key. Renews
// many leases in one call, for a single node only (the keys of different
// IDs may live on different Cluster nodes). Returns 0/1 per key.
var renewManyScript = goredis.NewScript(`
local out = {}
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[i + 1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[1])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
`)

var allScripts = []*goredis.Script{acquireScript, renewScript, renewManyScript, releaseScript, saveScript, deleteScript, fleetReserveScript, fleetRenewScript}
