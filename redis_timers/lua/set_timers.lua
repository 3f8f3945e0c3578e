-- KEYS: per topic of the batch, its timeline, payloads and state. ARGV: mode ('replace', 'keep', 'earlier' or
-- 'later'), one channel per topic (in KEYS order), then per timer: its topic's number (from 1, in KEYS order),
-- id, payload, 'in'|'at', milliseconds. Each timer is set as set_timer.lua sets it with that mode, in order, so
-- an id given twice ends as two calls one after the other would leave it. Reply: per timer, its due time and 1
-- if it was written, 0 if the existing timer was kept (its due time is then the existing one).
local mode = ARGV[1]
local topics = #KEYS / 3
local _, now_up = server_now_ms()
-- Per topic, the head's score before this batch (false: the timeline was empty) and the earliest score
-- written: the topic's workers are woken once, and only when the batch makes its head earlier.
local heads, earliest = {}, {}
local reply = {}
for i = 2 + topics, #ARGV, 5 do
  local t = tonumber(ARGV[i])
  local timeline, payloads = KEYS[3 * t - 2], KEYS[3 * t - 1]
  local id = ARGV[i + 1]
  local score = tonumber(ARGV[i + 4])
  if ARGV[i + 3] == 'in' then
    score = now_up + score
  end
  local kept = nil
  if mode ~= 'replace' then
    kept = kept_due(timeline, payloads, id, score, mode)
  end
  if kept then
    reply[#reply + 1] = kept
    reply[#reply + 1] = 0
  else
    if heads[t] == nil then
      local head = redis.call('ZRANGE', timeline, 0, 0, 'WITHSCORES')
      heads[t] = head[2] and tonumber(head[2]) or false
    end
    if redis.call('ZADD', timeline, ms(score), id) == 0 then
      -- Only a timer that was scheduled can have an error on record (acks and removals delete it).
      forget_state(KEYS[3 * t], id)
    end
    redis.call('HSET', payloads, id, ARGV[i + 2])
    if not earliest[t] or score < earliest[t] then
      earliest[t] = score
    end
    reply[#reply + 1] = score
    reply[#reply + 1] = 1
  end
end
for t, score in pairs(earliest) do
  if heads[t] == false or score < heads[t] then
    redis.call('PUBLISH', ARGV[1 + t], ms(score))
  end
end
return reply
