-- Insert a new session.
-- KEYS: session, index.
-- ARGV: handle, now, deadline, call token, then field/value pairs (the
--       token among them, as the field 'call').
-- Returns 1, or 0 if another call stored a session under this id.
-- A retry of this call (same token) finds its own session and returns 1.
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], 'call') == ARGV[4] then return 1 end
  return 0
end
local now = tonumber(ARGV[2])
-- Dead members (deadline <= now) leave the index; their keys expire on their own.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
put(KEYS[1], KEYS[2], ARGV[1], now, tonumber(ARGV[3]), ARGV, 5)
return 1
