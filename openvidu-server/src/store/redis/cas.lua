-- Replaces a session document if it is still at the version the caller read (compare-and-set).
-- KEYS[1] session document (hash); ARGV[1] expected version, ARGV[2] new JSON.
-- Returns 1 when written, 0 when the document changed or disappeared meanwhile.
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then
  return 0
end
redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HSET', KEYS[1], 'd', ARGV[2])
return 1
