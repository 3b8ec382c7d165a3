-- Insert a new session.
-- KEYS: session, index.
-- ARGV: now (the session's accessed_at: a new session's created_at), deadline, call
--       token, metadata, static[, login].
-- Returns 1, or 0 if another call stored a session under this id.
-- A retry of this call (same token) finds its own session and returns 1.
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], 'call') == ARGV[3] then return 1 end
  return 0
end
local now = tonumber(ARGV[1])
-- Dead members (deadline <= now) leave the index; their keys expire on their own.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('HSET', KEYS[1], 'call', ARGV[3], 'metadata', ARGV[4], 'accessed_at', ARGV[1],
           'static', ARGV[5])
if ARGV[6] then redis.call('HSET', KEYS[1], 'login', ARGV[6]) end
file(KEYS[1], KEYS[2], handle_of(KEYS[1]), now, tonumber(ARGV[2]))
return 1
