-- Record a read (the second call of a read under a custom read hook).
-- KEYS: session, index. ARGV: handle, now, new deadline ('' if unchanged).
-- A deleted or unlisted session is not re-created; a superseded one is not
-- extended; accessed_at never goes backwards. Returns 1 if touched.
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
local f = redis.call('HMGET', KEYS[1], 'accessed_at', 'grace_ends_at')
if not f[1] or f[2] then return 0 end
if tonumber(f[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'accessed_at', ARGV[2])
if ARGV[3] ~= '' then
  local now, deadline = tonumber(ARGV[2]), tonumber(ARGV[3])
  local ttl_ms = (deadline - now) * 1000
  redis.call('PEXPIRE', KEYS[1], ttl_ms)
  redis.call('ZADD', KEYS[2], deadline, ARGV[1])
  keep_index(KEYS[2], ttl_ms)
end
return 1
