-- Creates a session document if the id is free (SET NX semantics) and lists the id.
-- KEYS[1] session document (hash), KEYS[2] set of session ids; ARGV[1] JSON, ARGV[2] session id.
-- Returns 1 when created, 0 when the id is taken.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'v', 1, 'd', ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return 1
