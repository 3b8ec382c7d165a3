-- Supersede a session and insert its successor, exactly once.
-- KEYS: old session, new session, index.
-- ARGV: grace_ends_at, claim (renewed_by), now (the successor's created_at
--       and accessed_at), new deadline, login key, the successor's metadata
--       and static.
-- Returns {0} if the old session is gone, {1, renewed_by} if it was
-- superseded already (a retry of this call finds its own claim there),
-- {2, renewed_by} if this call superseded it, {3} if the new id is taken.
local old = handle_of(KEYS[1])
if not redis.call('ZSCORE', KEYS[3], old) then return {0} end
local f = redis.call('HMGET', KEYS[1], 'superseded', 'static')
if not f[2] then return {0} end
if f[1] then return {1, string.match(f[1], ' (.*)$')} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {3} end
local now = tonumber(ARGV[3])
local expires_at = tonumber(string.match(f[2], '^%d+ (%d+) '))
-- policy.deadline of a superseded session: the earlier of grace end and expiry.
local ends_at = math.min(tonumber(ARGV[1]), expires_at)
if ends_at > now then
  redis.call('HSET', KEYS[1], 'superseded', ARGV[1] .. ' ' .. ARGV[2], 'login', ARGV[5])
  redis.call('PEXPIRE', KEYS[1], (ends_at - now) * 1000)
  redis.call('ZADD', KEYS[3], ends_at, old)
else
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[3], old)
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
redis.call('HSET', KEYS[2], 'call', ARGV[2], 'metadata', ARGV[6], 'accessed_at', ARGV[3],
           'static', ARGV[7], 'login', ARGV[5])
file(KEYS[2], KEYS[3], handle_of(KEYS[2]), now, tonumber(ARGV[4]))
return {2, ARGV[2]}
