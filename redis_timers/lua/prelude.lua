-- Shared by the scripts: redis_timers/scripts.py puts before each script the functions below that it calls
-- (directly or through one another), each function being one blank-line separated block.
-- Per topic there are three keys: a timeline ZSET (id -> due or lease-expiry ms), a payloads
-- HASH (id -> stored payload) and a small state HASH ('e:'..id -> last error, '#seq' -> claim
-- counter). A stored payload is the payload's JSON, prefixed with '<attempts>:<token>|' while a
-- handler runs the timer and with '<attempts>:|' after a run failed or was handed back. Keeping
-- attempts and lease in the payload's own field makes a claim or an ack touch one big hash (O(1)
-- per field) rather than a small one whose compact encoding costs O(size) per field.

-- "Now" always comes from the server, so hosts with skewed clocks agree: its clock in whole milliseconds,
-- rounded down, then rounded up. A score D is due once the rounded-down now reaches it (never before D);
-- a score computed from now (now + delay, now + lease, due now) starts from the rounded-up now, so that it
-- never ends before the instant the script ran plus the delay.
local function server_now_ms()
  local t = redis.call('TIME')
  local whole_ms, micros = tonumber(t[1]) * 1000, tonumber(t[2])
  return whole_ms + math.floor(micros / 1000), whole_ms + math.ceil(micros / 1000)
end

-- Lua's unpack() fails beyond about 8,000 values (the size of its C stack), and a busy worker settles or
-- claims thousands of timers in one call: run `command key values...` over slices of `values` instead. A slice
-- is an even number of values, so field-value and score-member pairs are never split. Returns the elements of
-- the replies, in order, when they are arrays (HMGET), else nothing.
local function call_sliced(command, key, values)
  local slice = 4096
  local replies = {}
  for first = 1, #values, slice do
    local reply = redis.call(command, key, unpack(values, first, math.min(first + slice - 1, #values)))
    if type(reply) == 'table' then
      for j = 1, #reply do
        replies[#replies + 1] = reply[j]
      end
    end
  end
  return replies
end

local function ms(value)
  return string.format('%d', value)
end

-- Put id on the timeline at score; wake the topic's workers only when this makes the head
-- earlier, because a worker already sleeps until the current head. Returns 1 if id was not on the
-- timeline (so it has no lease and no error on record), else 0.
local function schedule(timeline, channel, id, score)
  local head = redis.call('ZRANGE', timeline, 0, 0, 'WITHSCORES')
  local added = redis.call('ZADD', timeline, ms(score), id)
  if head[1] == nil or score < tonumber(head[2]) then
    redis.call('PUBLISH', channel, ms(score))
  end
  return added
end

-- The shard's index of topic heads ({ns}:heads, topic -> the lowest score of its timeline, leases included) lets a
-- worker's round trip find its due topics in O(log N) rather than look at every topic. Every script that writes a
-- timeline calls this after its writes, once per topic it touched: O(log N). An empty timeline leaves the index.
local function update_head(heads, timeline, topic)
  local head = redis.call('ZRANGE', timeline, 0, 0, 'WITHSCORES')
  if head[1] then
    redis.call('ZADD', heads, head[2], topic)
  else
    redis.call('ZREM', heads, topic)
  end
end

-- The topic of a timeline key '<tag>:timeline:<topic>': no tag holds '}' but at its end.
local function topic_of(timeline)
  return string.sub(timeline, string.find(timeline, '}:timeline:', 1, true) + 11)
end

local function forget_state(state, id)
  redis.call('HDEL', state, 'e:' .. id)
end

-- Attempts and lease token ('' when no handler holds the timer) of a stored payload, without
-- copying its JSON.
local function run_of(stored)
  if not stored then
    return 0, ''
  end
  local first = string.byte(stored, 1)
  if not first or first < 48 or first > 57 then
    -- Not a digit: no run prefix (a fresh timer's JSON). Cheaper than the match, on every claim and settlement.
    return 0, ''
  end
  local attempts, token = string.match(stored, '^(%d+):([%d%.]*)|')
  if not attempts then
    return 0, ''
  end
  return tonumber(attempts), token
end

-- Attempts, lease token ('' when no handler holds the timer) and JSON of a stored payload. JSON never
-- starts with digits and a colon, so payloads written without the prefix (fresh timers) read as
-- never run.
local function unpack_stored(stored)
  if not stored then
    return 0, '', false
  end
  local first = string.byte(stored, 1)
  if not first or first < 48 or first > 57 then
    return 0, '', stored  -- as in run_of: no run prefix
  end
  local attempts, token, json_at = string.match(stored, '^(%d+):([%d%.]*)|()')
  if not attempts then
    return 0, '', stored
  end
  return tonumber(attempts), token, string.sub(stored, json_at)
end

-- A payload's JSON without the trace context that a producer may carry in front of it, '@<traceparent>|'
-- (JSON never starts with '@'). Claims keep it, for the worker's span; whatever shows a payload strips it.
local function untraced(json)
  if json and string.byte(json, 1) == 64 then
    local bar = string.find(json, '|', 2, true)
    if bar then
      return string.sub(json, bar + 1)
    end
  end
  return json
end

-- The due time of id's pending timer when `mode` ('keep', 'earlier' or 'later') keeps it rather than
-- scheduling `score`, else nil. A timer a handler runs is not pending: its score is the lease's expiry,
-- and keeping it would lose the new schedule once the handler acks, so every mode schedules anew.
local function kept_due(timeline, payloads, id, score, mode)
  local current = redis.call('ZSCORE', timeline, id)
  if not current then
    return nil
  end
  local _, token = run_of(redis.call('HGET', payloads, id))
  if token ~= '' then
    return nil
  end
  current = tonumber(current)
  if mode == 'keep' or (mode == 'earlier' and current <= score) or (mode == 'later' and current >= score) then
    return current
  end
  return nil
end

local function forget(timeline, payloads, state, id)
  local removed = redis.call('ZREM', timeline, id)
  redis.call('HDEL', payloads, id)
  forget_state(state, id)
  return removed
end

-- Park a timer in the dead letters with its payload, attempts and error.
local function bury(timeline, payloads, state, dead, topic, id, err, now)
  local attempts, _, payload = unpack_stored(redis.call('HGET', payloads, id))
  local record = cjson.encode({payload = untraced(payload) or '', attempts = attempts, error = err, failed_at = now})
  redis.call('HSET', dead, topic .. '\0' .. id, record)
  forget(timeline, payloads, state, id)
end
