-- KEYS: timeline, payloads, state. ARGV: channel, then (id, due ms, payload) triples.
-- Imports seed-era timers; a timer already scheduled under the new keys is newer and wins.
local imported = 0
for o = 2, #ARGV, 3 do
  local id = ARGV[o]
  if not redis.call('ZSCORE', KEYS[1], id) then
    schedule(KEYS[1], ARGV[1], id, tonumber(ARGV[o + 1]))
    redis.call('HSET', KEYS[2], id, ARGV[o + 2])
    forget_state(KEYS[3], id)
    imported = imported + 1
  end
end
return imported
