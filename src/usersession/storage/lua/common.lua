-- Shared by every script (prepended when the scripts are loaded).
--
-- Every script checks what it must before its first write: Redis does not
-- roll a script back on an error, so a script that fails has written nothing.
-- Every key a script touches is one of its KEYS (Redis Cluster, Dragonfly).
--
-- A session hash holds (see _redis_records): metadata (the serializer's
-- bytes), accessed_at, static ('<created_at> <expires_at>
-- <authenticated_at> <idle or -> <device key>', fixed at insert), once
-- superseded 'superseded' ('<grace_ends_at> <renewed_by>'), once its login
-- was renewed 'login', and 'call' (the token of the insert that stored it).

-- How long a call's marker lives: a retry of the same call (redis-py resends
-- a command whose reply was lost) finds the reply of the attempt that ran.
local MARK_MS = 15000

-- The handle of a session key: what follows its last ':', found from the
-- end by a plain (C-speed) search. Keys hold a percent-encoded subject of any
-- length, and a pattern such as '[^:]*$' is retried from every position of
-- the key: O(len^2), 0.2 s of server time a call at a 1,000-character
-- subject, and some 10 us at a short one.
local function handle_of(key)
  local from_end = string.find(string.reverse(key), ':', 1, true)
  return string.sub(key, #key - from_end + 2)
end

-- The index outlives every session filed in it: its TTL is raised to one
-- second past the longest session TTL set through it, never lowered. PTTLs
-- are the server's, so processes whose clocks disagree cannot shorten it.
local function keep_index(index, ttl_ms)
  if redis.call('PEXPIRE', index, ttl_ms + 1000, 'GT') == 0
     and redis.call('PTTL', index) == -1 then
    redis.call('PEXPIRE', index, ttl_ms + 1000)  -- a new index: no TTL yet
  end
end

-- File a session in the index with its TTL (deadline - now).
local function file(key, index, handle, now, deadline)
  local ttl_ms = (deadline - now) * 1000
  redis.call('PEXPIRE', key, ttl_ms)
  redis.call('ZADD', index, deadline, handle)
  keep_index(index, ttl_ms)
end

-- The reply of an earlier attempt of this call, if one ran (see MARK_MS).
local function earlier(marker)
  local packed = redis.call('GET', marker)
  if packed then return cmsgpack.unpack(packed) end
  return nil
end

local function mark(marker, reply)
  redis.call('SET', marker, cmsgpack.pack(reply), 'PX', MARK_MS)
  return reply
end

-- The fields every reply that carries a session holds, in this order
-- (_redis_records.RECORD_FIELDS).
local FIELDS = {'metadata', 'accessed_at', 'static', 'superseded', 'login'}
