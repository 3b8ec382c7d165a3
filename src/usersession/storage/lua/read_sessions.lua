-- Several sessions of one subject at once (read_all).
-- KEYS: the session keys the storage found in the index (live members).
-- Returns {handle, FIELDS..., ...} for each session still stored.
local listed = {}
for i = 1, #KEYS do
  local f = redis.call('HMGET', KEYS[i], unpack(FIELDS))
  if f[1] then
    listed[#listed + 1] = handle_of(KEYS[i])
    for j = 1, #FIELDS do listed[#listed + 1] = f[j] end
  end
end
return listed
