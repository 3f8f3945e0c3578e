-- Shared by every script (prepended by redis_timers/scripts.py).
-- Per topic there are three keys: a timeline ZSET (id -> due or lease-expiry ms), a payloads
-- HASH (id -> JSON) and a state HASH: 'r:'..id -> '<attempts>:<token>' while a handler runs the
-- timer and '<attempts>:' once that run failed or was handed back; 'e:'..id -> last error;
-- '#seq' -> claim counter. One field for attempts and lease keeps claims and acks cheap.

-- "Now" always comes from the server, so hosts with skewed clocks agree.
local function server_now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function ms(value)
  return string.format('%d', value)
end

-- Put id on the timeline at score; wake the topic's workers only when this makes the head
-- earlier, because a worker already sleeps until the current head.
local function schedule(timeline, channel, id, score)
  local head = redis.call('ZRANGE', timeline, 0, 0, 'WITHSCORES')
  redis.call('ZADD', timeline, ms(score), id)
  if head[1] == nil or score < tonumber(head[2]) then
    redis.call('PUBLISH', channel, ms(score))
  end
end

local function forget_state(state, id)
  redis.call('HDEL', state, 'r:' .. id, 'e:' .. id)
end

-- Attempts so far, from a 'r:' value (or false when the timer never ran).
local function attempts_of(run)
  if not run then
    return 0
  end
  return tonumber(string.match(run, '^(%d+):'))
end

-- The lease token in a 'r:' value, or '' when no handler holds it.
local function token_of(run)
  if not run then
    return ''
  end
  return string.match(run, ':(.*)$')
end

local function forget(timeline, payloads, state, id)
  local removed = redis.call('ZREM', timeline, id)
  redis.call('HDEL', payloads, id)
  forget_state(state, id)
  return removed
end

-- Park a timer in the dead letters with its payload, attempts and error.
local function bury(timeline, payloads, state, dead, topic, id, err, now)
  local payload = redis.call('HGET', payloads, id)
  local attempts = attempts_of(redis.call('HGET', state, 'r:' .. id))
  local record = cjson.encode({payload = payload or '', attempts = attempts, error = err, failed_at = now})
  redis.call('HSET', dead, topic .. '\0' .. id, record)
  forget(timeline, payloads, state, id)
end
