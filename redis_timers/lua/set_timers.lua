-- KEYS: per topic of the batch, its timeline, payloads and state (all in one shard), then the shard's heads index. ARGV: the mode ('replace',
-- 'keep', 'earlier' or 'later'), then per topic (in KEYS order) its channel, its number of timers n, and n times
-- id, payload and when: a due time in ms, or -1 - delay for a delay in ms from now. Each timer is set as
-- set_timer.lua sets it with that mode, in order, so an id given twice ends as two calls one after the other
-- would leave it. Reply: the rounded-up now that delays count from, then, for each timer kept rather than
-- written, its place in the batch (from 1, in ARGV order) and its existing due time.

-- `command key values...` over slices of `values` (see call_sliced), for a command that replies with a count:
-- the sum of the counts.
local function count_sliced(command, key, values)
  local slice = 4096
  local total = 0
  for first = 1, #values, slice do
    total = total + redis.call(command, key, unpack(values, first, math.min(first + slice - 1, #values)))
  end
  return total
end

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
  local last = i + 3 * (count - 1)
  local head = redis.call('ZRANGE', timeline, 0, 0, 'WITHSCORES')
  local earliest = nil
  if mode == 'replace' then
    -- The topic's timers in one ZADD and one HSET, whatever their number: a repeated id's last score and
    -- payload win, as its last call would. The scores go as Lua numbers: the server writes a whole number's
    -- digits (a due time is under 2^53), so ZADD reads back the score that was computed.
    local scores, fields, n = {}, {}, 0
    for j = i, last, 3 do
      local score = tonumber(ARGV[j + 2])
      if score < 0 then
        score = now_up - 1 - score
      end
      n = n + 2
      scores[n - 1], scores[n] = score, ARGV[j]
      fields[n - 1], fields[n] = ARGV[j], ARGV[j + 1]
      if not earliest or score < earliest then
        earliest = score
      end
    end
    place = place + count
    if count_sliced('ZADD', timeline, scores) < count then
      -- Some were scheduled already (or an id came twice). Only a timer that was scheduled can have an error on
      -- record (acks and removals delete it), so when every timer was new there is nothing to forget.
      local errors = {}
      for j = i, last, 3 do
        errors[#errors + 1] = 'e:' .. ARGV[j]
      end
      call_sliced('HDEL', state, errors)
    end
    call_sliced('HSET', payloads, fields)
  else
    -- The other modes read before each write.
    for j = i, last, 3 do
      local id, score = ARGV[j], tonumber(ARGV[j + 2])
      if score < 0 then
        score = now_up - 1 - score
      end
      place = place + 1
      local kept = kept_due(timeline, payloads, id, score, mode)
      if kept then
        reply[#reply + 1] = place
        reply[#reply + 1] = kept
      else
        if redis.call('ZADD', timeline, ms(score), id) == 0 then
          forget_state(state, id)
        end
        redis.call('HSET', payloads, id, ARGV[j + 1])
        if not earliest or score < earliest then
          earliest = score
        end
      end
    end
  end
  i = last + 3
  -- The topic's workers are woken once, and only when the batch made its head earlier.
  if earliest and (head[1] == nil or earliest < tonumber(head[2])) then
    redis.call('PUBLISH', channel, ms(earliest))
  end
  if earliest then
    update_head(heads, timeline, topic_of(timeline))
  end
end
return reply
