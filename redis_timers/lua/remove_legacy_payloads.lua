-- KEYS: the original payloads hash. ARGV: (member, SHA1 of the payload) pairs.
-- Deletes the copies the import left of timers now done, unless a process of the original library wrote
-- them again since (then the SHA1 differs). Returns how many were deleted.
local deleted = 0
for o = 1, #ARGV, 2 do
  local body = redis.call('HGET', KEYS[1], ARGV[o])
  if body and redis.sha1hex(body) == ARGV[o + 1] then
    redis.call('HDEL', KEYS[1], ARGV[o])
    deleted = deleted + 1
  end
end
return deleted
