-- KEYS: timeline, payloads, state, the shard's heads index. ARGV: id, payload, 'in'|'at', milliseconds, channel[, mode].
-- Replaces due time and payload at once and drops any lease: a handler still running for the
-- old schedule then fails its token check and cannot delete this one. Without a mode (replace) the
-- reply is the due time; with 'keep', 'earlier' or 'later' it is {due time, 1 if written else 0}, the
-- due time being the existing timer's when it was kept.
local id = ARGV[1]
local score = tonumber(ARGV[4])
if ARGV[3] == 'in' then
  local _, now_up = server_now_ms()
  score = now_up + score
end
local mode = ARGV[6]
if mode then
  local kept = kept_due(KEYS[1], KEYS[2], id, score, mode)
  if kept then
    return {kept, 0}
  end
end
local added = schedule(KEYS[1], ARGV[5], id, score)
redis.call('HSET', KEYS[2], id, ARGV[2])
if added == 0 then
  -- Only a timer that was scheduled can have an error on record (acks and removals delete it).
  forget_state(KEYS[3], id)
end
update_head(KEYS[4], KEYS[1], topic_of(KEYS[1]))
if mode then
  return {score, 1}
end
return score
