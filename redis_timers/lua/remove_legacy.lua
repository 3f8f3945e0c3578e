-- KEYS: the original timeline. ARGV: (member, score) pairs.
-- Removes each member only if its score is unchanged since it was read, so a process of the original
-- library that rescheduled it in the meantime is not undone. Returns {the removed members, how many of the
-- others are still on the timeline (rescheduled; the rest were cancelled)}.
local removed = {}
local rescheduled = 0
for o = 1, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[o])
  if score and tonumber(score) == tonumber(ARGV[o + 1]) then
    redis.call('ZREM', KEYS[1], ARGV[o])
    removed[#removed + 1] = ARGV[o]
  elseif score then
    rescheduled = rescheduled + 1
  end
end
return {removed, rescheduled}
