-- Removes a session's hash if it is still at the version the caller read, and unlists its id.
-- KEYS[1] the session's hash, KEYS[2] set of session ids; ARGV[1] session id, ARGV[2] version.
-- Returns 1 when removed, 0 when the document changed or disappeared meanwhile.
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[2] then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
