-- KEYS: per topic of the batch, its timeline, payloads and state (all in one shard), then the shard's heads index. ARGV: per topic (in KEYS
-- order) its number of timers n and n ids. Reply: per timer, 1 if it was removed (as remove_timer.lua), in order.
local reply = {}
local i = 1
local heads = KEYS[#KEYS]
for t = 1, (#KEYS - 1) / 3 do
  local count = tonumber(ARGV[i])
  local removed = 0
  for j = 1, count do
    reply[#reply + 1] = forget(KEYS[3 * t - 2], KEYS[3 * t - 1], KEYS[3 * t], ARGV[i + j])
    removed = removed + reply[#reply]
  end
  if removed > 0 then
    update_head(heads, KEYS[3 * t - 2], topic_of(KEYS[3 * t - 2]))
  end
  i = i + count + 1
end
return reply
