-- Read a session and, in mode 'a' (apply), do what the read verdict says.
-- KEYS: session, index, call marker.
-- ARGV: now, '<mode> <renewal or -> <absolute or -> <renew now: 1 or 0>',
--       the reader's device key (for check_same_device).
-- mode: 'p' (peek)   return the session, judge nothing, write nothing;
--       'j' (judge)  return the verdict, write nothing (a custom read hook
--                    runs in Python before anything is written);
--       'a' (apply)  check the device as the default read hook does, then
--                    touch (TOUCH) or delete (IDLE) as the verdict says.
-- Returns {verdict} or {verdict, FIELDS...}; verdicts: 0 gone, 1 grace,
-- 2 idle, 3 renew, 4 touch, 5 wrong device, 6 corrupt, 7 peeked.
--
-- The verdict mirrors policy.read_verdict (and the touch's new deadline
-- policy.deadline) step by step; tests/test_redis_judgement.py runs random
-- sessions through both and holds them equal.
local key, index = KEYS[1], KEYS[2]
local handle = handle_of(key)
-- Fail closed: a session its index does not list is not found, whatever
-- its key holds (an index evicted under maxmemory, a member trimmed).
if not redis.call('ZSCORE', index, handle) then
  return earlier(KEYS[3]) or {0}
end
local f = redis.call('HMGET', key, 'metadata', 'accessed_at', 'static', 'superseded', 'login')
if not f[1] then return {0} end
local reply = {7, f[1], f[2], f[3], f[4], f[5]}
local mode, renewal, absolute, renew_now = string.match(ARGV[2], '^(%a) (%S+) (%S+) (%d)$')
if mode == 'p' then return reply end

local now = tonumber(ARGV[1])
renewal, absolute = tonumber(renewal), tonumber(absolute)
local accessed_at = tonumber(f[2])
local created_at, expires_at, authenticated_at, idle, device =
  string.match(f[3] or '', '^(%d+) (%d+) (%d+) (%S+) (.*)$')
created_at, expires_at = tonumber(created_at), tonumber(expires_at)
authenticated_at = tonumber(authenticated_at)
if idle == '-' then idle = false else idle = tonumber(idle) end
local grace_ends_at = false
if f[4] then grace_ends_at = tonumber(string.match(f[4], '^(%d+) ')) end
if not (accessed_at and created_at and expires_at and authenticated_at)
   or idle == nil or grace_ends_at == nil then
  return {6}
end
-- 1. gone: past expires_at, past the login's absolute timeout, or past
-- the grace of a renewal.
if now >= expires_at or (absolute and now - authenticated_at >= absolute)
   or (grace_ends_at and now >= grace_ends_at) then
  return {0}
end
-- 2. the default read hook: a session bound to a device needs that device.
if mode == 'a' and device ~= '' and device ~= ARGV[3] then return {5} end
-- 3. superseded, inside its grace: served as it is.
if grace_ends_at then
  reply[1] = 1
  return reply
end
-- 4. idle: deleted (in mode 'a', with a marker for a retry of this call).
if idle and now - accessed_at >= idle then
  reply[1] = 2
  if mode ~= 'a' then return reply end
  redis.call('DEL', key)
  redis.call('ZREM', index, handle)
  return mark(KEYS[3], reply)
end
-- 5. renewal due (or asked for): the renew script does it.
if renew_now == '1' or (renewal and now - created_at >= renewal) then
  reply[1] = 3
  return reply
end
-- 6. touch: accessed_at = now, never backwards; with idle on, the deadline
-- moves to min(expires_at, now + idle) (policy.deadline).
reply[1] = 4
if mode == 'a' and accessed_at < now then
  redis.call('HSET', key, 'accessed_at', ARGV[1])
  reply[3] = ARGV[1]
  if idle then file(key, index, handle, now, math.min(expires_at, now + idle)) end
end
return reply
