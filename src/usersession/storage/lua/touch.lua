-- Record a read (the second call of a read under a custom read hook).
-- KEYS: session, index. ARGV: now, new deadline ('' if unchanged).
-- A deleted or unlisted session is not re-created; a superseded one is not
-- extended; accessed_at never goes backwards. Returns 1 if touched.
local handle = handle_of(KEYS[1])
if not redis.call('ZSCORE', KEYS[2], handle) then return 0 end
local f = redis.call('HMGET', KEYS[1], 'accessed_at', 'superseded')
if not f[1] or f[2] then return 0 end
if tonumber(f[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'accessed_at', ARGV[1])
if ARGV[2] ~= '' then
  file(KEYS[1], KEYS[2], handle, tonumber(ARGV[1]), tonumber(ARGV[2]))
end
return 1
