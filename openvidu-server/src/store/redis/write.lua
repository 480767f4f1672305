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
local last_set, last = 4 + 2 * n, #ARGV
if last == 4 then
  return {'ok'}
end
-- Few commands, each with many arguments: every redis.call goes through Redis's command dispatch.
-- In slices, as Lua's unpack is limited to a few thousand values (an even size keeps field/value
-- pairs whole).
local SLICE = 1000
for i = last_set + 1, last, SLICE do
  redis.call('HDEL', KEYS[1], unpack(ARGV, i, math.min(i + SLICE - 1, last)))
end
-- The next version and the tag with the first slice (with nothing else when there is nothing to
-- set): one command fewer than an HINCRBY of its own. The version was checked equal to ARGV[1].
local version = string.format('%d', tonumber(ARGV[1]) + 1)
redis.call('HSET', KEYS[1], 'v', version, 'w', ARGV[3], unpack(ARGV, 5, math.min(4 + SLICE, last_set)))
for i = 5 + SLICE, last_set, SLICE do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + SLICE - 1, last_set)))
end
return {'ok'}
