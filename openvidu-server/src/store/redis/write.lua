-- Writes some fields of a session's hash if it is still at the version the caller read.
-- KEYS[1] the session's hash; ARGV[1] the expected version; ARGV[2] n, the number of fields to
-- set; then n field/value pairs; then the fields to delete.
-- Returns {'ok'} when written (the version goes up by one when anything was written), or
-- {'stale', field, value, ...}: the whole hash as it is now, nothing more when it is gone, so
-- that the caller can retry without reading it again.
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then
  local all = redis.call('HGETALL', KEYS[1])
  table.insert(all, 1, 'stale')
  return all
end
local n = tonumber(ARGV[2])
local changed = false
for i = 0, n - 1 do
  redis.call('HSET', KEYS[1], ARGV[3 + 2 * i], ARGV[4 + 2 * i])
  changed = true
end
for i = 3 + 2 * n, #ARGV do
  redis.call('HDEL', KEYS[1], ARGV[i])
  changed = true
end
if changed then
  redis.call('HINCRBY', KEYS[1], 'v', 1)
end
return {'ok'}
