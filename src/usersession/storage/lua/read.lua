-- Read a session and, in mode 'apply', do what the read verdict says.
-- KEYS: session, index, call marker.
-- ARGV: handle, now, mode, renewal ('' for none), absolute ('' for none),
--       renew now ('1' or '0'), device of the reader (check_same_device).
-- mode: 'peek'  return the session, judge nothing, write nothing;
--       'judge' return the verdict, write nothing (a custom read hook runs
--               in Python before anything is written);
--       'apply' check the device as the default read hook does, then touch
--               (TOUCH) or delete (IDLE) as the verdict says.
-- Returns {verdict} or {verdict, FIELDS...}; verdicts: 0 gone, 1 grace,
-- 2 idle, 3 renew, 4 touch, 5 wrong device, 6 corrupt, 7 peeked.
--
-- The verdict mirrors policy.read_verdict (and the touch's new deadline
-- policy.deadline) line by line; tests/test_redis_judgement.py runs random
-- sessions through both and holds them equal.
local key, index, handle = KEYS[1], KEYS[2], ARGV[1]
-- Fail closed: a session its index does not list is not found, whatever
-- its key holds (an index evicted under maxmemory, a member trimmed).
if not redis.call('ZSCORE', index, handle) then
  return earlier(KEYS[3]) or {0}
end
local f = redis.call('HMGET', key, 'metadata', 'accessed_at', 'grace_ends_at', 'renewed_by',
                     'login', 'expires_at', 'created_at', 'authenticated_at', 'idle', 'device')
if not f[1] then return {0} end
local mode = ARGV[3]
local reply = {7, f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9]}
if mode == 'peek' then return reply end

local now = tonumber(ARGV[2])
local accessed_at, expires_at = tonumber(f[2]), tonumber(f[6])
local created_at, authenticated_at = tonumber(f[7]), tonumber(f[8])
local idle = f[9] and tonumber(f[9])
local grace_ends_at = f[3] and tonumber(f[3])
if not (accessed_at and expires_at and created_at and authenticated_at)
   or idle == nil or grace_ends_at == nil then
  return {6}
end
local absolute = tonumber(ARGV[5])
-- 1. gone: past expires_at, past the login's absolute timeout, or past
-- the grace of a renewal.
if now >= expires_at or (absolute and now - authenticated_at >= absolute)
   or (grace_ends_at and now >= grace_ends_at) then
  return {0}
end
-- 2. the default read hook: a session bound to a device needs that device.
if mode == 'apply' and f[10] and f[10] ~= ARGV[7] then return {5} end
-- 3. superseded, inside its grace: served as it is.
if grace_ends_at then
  reply[1] = 1
  return reply
end
-- 4. idle: deleted (in mode 'apply', with a marker for a retry of this call).
if idle and now - accessed_at >= idle then
  reply[1] = 2
  if mode ~= 'apply' then return reply end
  redis.call('DEL', key)
  redis.call('ZREM', index, handle)
  return mark(KEYS[3], reply)
end
-- 5. renewal due (or asked for): the renew script does it.
local renewal = tonumber(ARGV[4])
if ARGV[6] == '1' or (renewal and now - created_at >= renewal) then
  reply[1] = 3
  return reply
end
-- 6. touch: accessed_at = now, never backwards; with idle on, the deadline
-- moves to min(expires_at, now + idle) (policy.deadline).
reply[1] = 4
if mode == 'apply' and accessed_at < now then
  redis.call('HSET', key, 'accessed_at', ARGV[2])
  reply[3] = ARGV[2]
  if idle then
    local deadline = math.min(expires_at, now + idle)
    local ttl_ms = (deadline - now) * 1000
    redis.call('PEXPIRE', key, ttl_ms)
    redis.call('ZADD', index, deadline, handle)
    keep_index(index, ttl_ms)
  end
end
return reply
