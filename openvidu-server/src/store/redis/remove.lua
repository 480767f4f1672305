-- Removes a session document and unlists its id.
-- KEYS[1] session document (hash), KEYS[2] set of session ids; ARGV[1] session id.
-- Returns the removed JSON, or nil when there was none.
local doc = redis.call('HGET', KEYS[1], 'd')
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return doc
