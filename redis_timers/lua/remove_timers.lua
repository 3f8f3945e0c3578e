-- KEYS: per topic of the batch, its timeline, payloads and state. ARGV: per timer, its topic's number (from 1,
-- in KEYS order) and id. Reply: per timer, 1 if it was removed (as remove_timer.lua), in order.
local reply = {}
for i = 1, #ARGV, 2 do
  local t = tonumber(ARGV[i])
  reply[#reply + 1] = forget(KEYS[3 * t - 2], KEYS[3 * t - 1], KEYS[3 * t], ARGV[i + 1])
end
return reply
