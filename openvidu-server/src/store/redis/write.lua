-- Writes some fields of a session's hash if it is still the version the caller expects: the same
-- version counter and the same writer tag (the tag of the write that made that version, '' when
-- none did). The tag makes a version unique across masters, so that a caller may expect a version
-- its own earlier write, still in flight, is to make.
-- KEYS[1] the session's hash; ARGV[1] the expected version; ARGV[2] the expected writer tag;
-- ARGV[3] this write's tag; ARGV[4] n, the number of fields to set; then n field/value pairs;
-- then the fields to delete.
-- Returns {'ok'} when written (when anything was written, the version goes up by one and the
-- writer tag becomes this write's), or {'stale', field, value, ...}: the whole hash as it is now,
-- nothing more when it is gone, so that the caller can retry without reading it again.
local at = redis.call('HMGET', KEYS[1], 'v', 'w')
if at[1] ~= ARGV[1] or (at[2] or '') ~= ARGV[2] then
  local all = redis.call('HGETALL', KEYS[1])
  table.insert(all, 1, 'stale')
  return all
end
local n = tonumber(ARGV[4])
local changed = false
for i = 0, n - 1 do
  redis.call('HSET', KEYS[1], ARGV[5 + 2 * i], ARGV[6 + 2 * i])
  changed = true
end
for i = 5 + 2 * n, #ARGV do
  redis.call('HDEL', KEYS[1], ARGV[i])
  changed = true
end
if changed then
  redis.call('HSET', KEYS[1], 'w', ARGV[3])
  redis.call('HINCRBY', KEYS[1], 'v', 1)
end
return {'ok'}
