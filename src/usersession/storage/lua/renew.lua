-- Supersede a session and insert its successor, exactly once.
-- KEYS: old session, new session, index.
-- ARGV: old handle, grace_ends_at, claim (renewed_by), new handle, now,
--       new deadline, login key, then the successor's field/value pairs.
-- Returns {0} if the old session is gone, {1, renewed_by} if it was
-- superseded already (a retry of this call finds its own claim there),
-- {2, renewed_by} if this call superseded it, {3} if the new id is taken.
if not redis.call('ZSCORE', KEYS[3], ARGV[1]) then return {0} end
local old = redis.call('HMGET', KEYS[1], 'renewed_by', 'expires_at')
if not old[2] then return {0} end
if old[1] then return {1, old[1]} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {3} end
local now = tonumber(ARGV[5])
-- policy.deadline of a superseded session: the earlier of grace end and expiry.
local ends_at = math.min(tonumber(ARGV[2]), tonumber(old[2]))
if ends_at > now then
  redis.call('HSET', KEYS[1], 'grace_ends_at', ARGV[2], 'renewed_by', ARGV[3], 'login', ARGV[7])
  redis.call('PEXPIRE', KEYS[1], (ends_at - now) * 1000)
  redis.call('ZADD', KEYS[3], ends_at, ARGV[1])
else
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
put(KEYS[2], KEYS[3], ARGV[4], now, tonumber(ARGV[6]), ARGV, 8)
return {2, ARGV[3]}
