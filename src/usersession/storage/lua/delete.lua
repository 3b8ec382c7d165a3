-- Delete one session.
-- KEYS: session, index, call marker. ARGV: '1' to return its fields.
-- Returns {} if nothing was removed, else {1} or {1, FIELDS...}; a retry of
-- this call returns what the attempt that ran removed.
redis.call('ZREM', KEYS[2], handle_of(KEYS[1]))
local fields = nil
if ARGV[1] == '1' then fields = redis.call('HMGET', KEYS[1], unpack(FIELDS)) end
if redis.call('DEL', KEYS[1]) == 0 then return earlier(KEYS[3]) or {} end
local reply = {1}
if fields then
  for i = 1, #FIELDS do reply[i + 1] = fields[i] end
end
return mark(KEYS[3], reply)
