-- Creates a session's hash if the id is free (SET NX semantics) and lists the id.
-- KEYS[1] the session's hash, KEYS[2] the set of session ids; ARGV[1] the session's JSON,
-- ARGV[2] the session id. Returns 1 when created, 0 when the id is taken.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'v', 1, 's', ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return 1
