-- Insert a new session.
-- KEYS: session, index.
-- ARGV: now, deadline, call token, then the session's field/value pairs.
-- Returns 1, or 0 if another call stored a session under this id.
-- A retry of this call (same token) finds its own session and returns 1.
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], 'call') == ARGV[3] then return 1 end
  return 0
end
local now = tonumber(ARGV[1])
-- Dead members (deadline <= now) leave the index; their keys expire on their own.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('HSET', KEYS[1], 'call', ARGV[3], unpack(ARGV, 4))
file(KEYS[1], KEYS[2], handle_of(KEYS[1]), now, tonumber(ARGV[2]))
return 1
