-- Delete several sessions of one subject: all of them, one login, or all
-- but one login.
-- KEYS: index, call marker, then the session keys of the handles the
--       storage just read from the index.
-- ARGV: mode ('all', 'login', 'others'), '1' to return the fields, login
--       (mode 'login') or the handle to keep (mode 'others'), now.
-- Returns {count, handle, FIELDS..., ...}; {-1} in mode 'others' when the
-- session to keep is not live at now; {-2} when the index holds a handle
-- the storage did not pass (it changed since it was read: list it again).
-- A retry of this call returns what the attempt that ran removed.
local done = earlier(KEYS[2])
if done then return done end
local index, mode, want = KEYS[1], ARGV[1], ARGV[2] == '1'
local handles, position = {}, {}
for i = 3, #KEYS do
  handles[i] = handle_of(KEYS[i])
  position[handles[i]] = i
end
local members = redis.call('ZRANGE', index, 0, -1)
for i = 1, #members do
  if not position[members[i]] then return {-2} end
end
local login = nil
if mode == 'login' then
  login = ARGV[3]
elseif mode == 'others' then
  local at = position[ARGV[3]]
  local score = redis.call('ZSCORE', index, ARGV[3])
  if not at or not score or tonumber(score) <= tonumber(ARGV[4]) then return {-1} end
  if redis.call('EXISTS', KEYS[at]) == 0 then return {-1} end
  login = redis.call('HGET', KEYS[at], 'login') or ARGV[3]
end
local reply = {0}
for i = 3, #KEYS do
  local handle, key = handles[i], KEYS[i]
  local doomed = true
  if mode ~= 'all' then
    local of = redis.call('HGET', key, 'login') or handle
    if mode == 'login' then doomed = (of == login) else doomed = (of ~= login) end
  end
  if doomed then
    local f = nil
    if want then f = redis.call('HMGET', key, unpack(FIELDS)) end
    if redis.call('DEL', key) == 1 then
      reply[1] = reply[1] + 1
      if f then
        reply[#reply + 1] = handle
        for j = 1, #FIELDS do reply[#reply + 1] = f[j] end
      end
    end
    redis.call('ZREM', index, handle)
  end
end
if mode == 'all' then redis.call('DEL', index) end
return mark(KEYS[2], reply)
