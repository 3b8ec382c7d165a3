-- End the login of one session, when it is a login of one session.
-- KEYS: session, index, call marker. ARGV: '1' to return the fields.
-- Returns {count, handle, FIELDS...} (count 0: not stored under this
-- subject), or {-3, login} when the session belongs to a renewed login:
-- then the storage lists the index and calls delete_sessions.lua.
local done = earlier(KEYS[3])
if done then return done end
local handle = handle_of(KEYS[1])
if not redis.call('ZSCORE', KEYS[2], handle) then return {0} end
local f = redis.call('HMGET', KEYS[1], unpack(FIELDS))
if not f[1] then return {0} end
if f[5] then return {-3, f[5]} end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], handle)
local reply = {1}
if ARGV[1] == '1' then
  reply[2] = handle
  for i = 1, #FIELDS do reply[i + 2] = f[i] end
end
return mark(KEYS[3], reply)
