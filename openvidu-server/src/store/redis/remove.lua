-- Removes a session's hash and unlists its id.
-- KEYS[1] the session's hash, KEYS[2] the set of session ids; ARGV[1] the session id.
-- Returns the removed hash (HGETALL: field, value, ...), empty when there was none.
local all = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return all
