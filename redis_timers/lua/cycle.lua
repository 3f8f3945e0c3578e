-- One worker round trip: settle finished runs, renew leases, then claim due timers.
-- KEYS: dead, this call's claim record, the previous call's claim record, then per topic: timeline,
--       payloads, state.
-- ARGV: lease_ms, claim_limit, cutoff ('' = now), channel_prefix, n_topics, topics...,
--       first topic to claim from (rotates for fairness), n_ops, then the ops, each
--       '<kind><topic index>', id, token, and for 'r' (retry) delay_ms and error, for 'd' (dead) error.
--       Kinds: a = ack, r = retry, d = dead letter, l = release the lease, n = renew the lease.
-- Returns {now, next_due (-1 if none), stale ops, due timers examined (claimed or buried), then two per
--          claimed timer:
--          '<topic index>:<attempts>:<token>:<id>', payload}.
local now = server_now_ms()
local lease_ms = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local cutoff = now
if ARGV[3] ~= '' then
  cutoff = math.min(now, tonumber(ARGV[3]))
end
local channel_prefix = ARGV[4]
local n = tonumber(ARGV[5])
local start = tonumber(ARGV[6 + n])
local n_ops = tonumber(ARGV[7 + n])
local dead = KEYS[1]

local function topic_keys(i)
  return KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]
end
local record, previous_record = KEYS[2], KEYS[3]
-- The previous call's reply arrived (this call comes after it), so its record is no longer needed.
redis.call('DEL', previous_record)

-- Every settlement acts only while its token still matches: a set_timer or remove_timer
-- made while the handler ran has dropped the lease, and must not be undone.
local stale = 0
local acked = {}  -- topic index -> ids, removed in one batch per topic below
local o = 8 + n
for _ = 1, n_ops do
  local header, id, token = ARGV[o], ARGV[o + 1], ARGV[o + 2]
  local kind, ti = string.sub(header, 1, 1), tonumber(string.sub(header, 2))
  o = o + 3
  local argument, err = nil, ''
  if kind == 'r' then
    argument, err = ARGV[o], ARGV[o + 1]
    o = o + 2
  elseif kind == 'd' then
    err = ARGV[o]
    o = o + 1
  end
  local timeline, payloads, state = topic_keys(ti)
  local topic = ARGV[5 + ti]
  if redis.call('HGET', state, 'l:' .. id) ~= token then
    stale = stale + 1
  elseif kind == 'a' then
    local ids = acked[ti]
    if not ids then
      ids = {}
      acked[ti] = ids
    end
    ids[#ids + 1] = id
  elseif kind == 'n' then
    redis.call('ZADD', timeline, 'XX', ms(now + lease_ms), id)
  elseif kind == 'r' then
    redis.call('HDEL', state, 'l:' .. id)
    redis.call('HSET', state, 'e:' .. id, err)
    schedule(timeline, channel_prefix .. topic, id, now + tonumber(argument))
  elseif kind == 'l' then
    -- A handed-back lease is not an attempt.
    redis.call('HDEL', state, 'l:' .. id)
    if redis.call('HINCRBY', state, 'a:' .. id, -1) <= 0 then
      redis.call('HDEL', state, 'a:' .. id)
    end
    schedule(timeline, channel_prefix .. topic, id, now)
  elseif kind == 'd' then
    bury(timeline, payloads, state, dead, topic, id, err, now)
  end
end
for ti, ids in pairs(acked) do
  local timeline, payloads, state = topic_keys(ti)
  local fields = {}
  for j, id in ipairs(ids) do
    fields[3 * j - 2] = 'l:' .. id
    fields[3 * j - 1] = 'a:' .. id
    fields[3 * j] = 'e:' .. id
  end
  redis.call('ZREM', timeline, unpack(ids))
  redis.call('HDEL', payloads, unpack(ids))
  redis.call('HDEL', state, unpack(fields))
end

local reply = {now, -1, stale, 0}

-- Two ids of one claim: meta ('<topic index>:<attempts>:<token>:<id>') and payload.
local function add_claim(meta, body)
  reply[#reply + 1] = meta
  reply[#reply + 1] = body
end

local replayed = redis.call('LRANGE', record, 0, -1)
if #replayed > 0 then
  -- This call ran before and its reply never arrived (redis-py re-sends after a connection error, and the
  -- worker retries with the same record): hand back the same claims, where their leases still hold,
  -- rather than claim others and leave these leased to nobody until the lease ends.
  for _, meta in ipairs(replayed) do
    local ti, token, id = string.match(meta, '^(%d+):%d+:([^:]+):(.*)$')
    local _, payloads, state = topic_keys(tonumber(ti))
    if redis.call('HGET', state, 'l:' .. id) == token then
      local body = redis.call('HGET', payloads, id)
      if body then
        add_claim(meta, body)
      end
    end
  end
  reply[4] = limit
else
  local claimed = {}
  local remaining = limit
  for step = 0, n - 1 do
    if remaining <= 0 then
      break
    end
    local ti = ((start + step) % n) + 1
    local timeline, payloads, state = topic_keys(ti)
    local ids = redis.call('ZRANGEBYSCORE', timeline, '-inf', ms(cutoff), 'LIMIT', 0, remaining)
    if #ids > 0 then
      remaining = remaining - #ids
      reply[4] = reply[4] + #ids
      -- The lease is the score: if this worker dies, the timer is due again when the lease ends.
      local expiry = ms(now + lease_ms)
      local zadd, attempt_fields = {}, {}
      for j, id in ipairs(ids) do
        zadd[2 * j - 1] = expiry
        zadd[2 * j] = id
        attempt_fields[j] = 'a:' .. id
      end
      redis.call('ZADD', timeline, unpack(zadd))
      local bodies = redis.call('HMGET', payloads, unpack(ids))
      local counts = redis.call('HMGET', state, unpack(attempt_fields))
      local seq = redis.call('HINCRBY', state, '#seq', 1)
      local hset = {}
      for j, id in ipairs(ids) do
        if bodies[j] then
          local token = seq .. '.' .. j
          local attempts = tonumber(counts[j] or '0') + 1
          hset[#hset + 1] = 'l:' .. id
          hset[#hset + 1] = token
          hset[#hset + 1] = 'a:' .. id
          hset[#hset + 1] = attempts
          local meta = ti .. ':' .. attempts .. ':' .. token .. ':' .. id
          claimed[#claimed + 1] = meta
          add_claim(meta, bodies[j])
        else
          bury(timeline, payloads, state, dead, ARGV[5 + ti], id, 'payload missing', now)
        end
      end
      if #hset > 0 then
        redis.call('HSET', state, unpack(hset))
      end
    end
  end
  if #claimed > 0 then
    redis.call('RPUSH', record, unpack(claimed))
    redis.call('PEXPIRE', record, lease_ms)
  end
end

local next_due = -1
for i = 1, n do
  local head = redis.call('ZRANGE', KEYS[3 * i + 1], 0, 0, 'WITHSCORES')
  if head[1] then
    local score = tonumber(head[2])
    if next_due < 0 or score < next_due then
      next_due = score
    end
  end
end
reply[2] = next_due
return reply
