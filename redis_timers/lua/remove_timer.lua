-- KEYS: timeline, payloads, state, the shard's heads index. ARGV: id. Returns 1 if a timer was removed.
local removed = forget(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
if removed == 1 then
  update_head(KEYS[4], KEYS[1], topic_of(KEYS[1]))
end
return removed
