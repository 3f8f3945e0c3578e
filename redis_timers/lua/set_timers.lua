-- KEYS: per topic of the batch, its timeline, payloads and state (all in one shard), then the shard's heads index. ARGV: the mode ('replace',
-- 'keep', 'earlier' or 'later'), then per topic (in KEYS order) its channel, its number of timers n, and n times
-- id, payload and when: a due time in ms, or -1 - delay for a delay in ms from now. Each timer is set as
-- set_timer.lua sets it with that mode, in order, so an id given twice ends as two calls one after the other
-- would leave it. Reply: the rounded-up now that delays count from, then, for each timer kept rather than
-- written, its place in the batch (from 1, in ARGV order) and its existing due time.
local mode = ARGV[1]
local _, now_up = server_now_ms()
local reply = {now_up}
local place = 0
local i = 2
local heads = KEYS[#KEYS]
for t = 1, (#KEYS - 1) / 3 do
  local timeline, payloads, state = KEYS[3 * t - 2], KEYS[3 * t - 1], KEYS[3 * t]
  local channel, count = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  local head = redis.call('ZRANGE', timeline, 0, 0, 'WITHSCORES')
  local earliest = nil
  -- "replace" writes the topic's timers in three commands, whatever their number: a repeated id's last
  -- score and payload win, as its last call would. The other modes read before each write.
  local scored, stored, errors = {}, {}, {}
  for _ = 1, count do
    local id, when = ARGV[i], tonumber(ARGV[i + 2])
    local score = when
    if when < 0 then
      score = now_up - 1 - when
    end
    place = place + 1
    local kept = mode ~= 'replace' and kept_due(timeline, payloads, id, score, mode)
    if kept then
      reply[#reply + 1] = place
      reply[#reply + 1] = kept
    else
      if mode == 'replace' then
        scored[#scored + 1] = ms(score)
        scored[#scored + 1] = id
        stored[#stored + 1] = id
        stored[#stored + 1] = ARGV[i + 1]
        errors[#errors + 1] = 'e:' .. id
      else
        if redis.call('ZADD', timeline, ms(score), id) == 0 then
          forget_state(state, id)
        end
        redis.call('HSET', payloads, id, ARGV[i + 1])
      end
      if not earliest or score < earliest then
        earliest = score
      end
    end
    i = i + 3
  end
  if #scored > 0 then
    call_sliced('ZADD', timeline, scored)
    call_sliced('HSET', payloads, stored)
    -- Only a timer that was scheduled has an error on record; deleting the field of a new one is a no-op.
    call_sliced('HDEL', state, errors)
  end
  -- The topic's workers are woken once, and only when the batch made its head earlier.
  if earliest and (head[1] == nil or earliest < tonumber(head[2])) then
    redis.call('PUBLISH', channel, ms(earliest))
  end
  if earliest then
    update_head(heads, timeline, topic_of(timeline))
  end
end
return reply
