-- One worker round trip: settle finished runs, renew leases, then claim due timers.
-- KEYS: dead, this call's claim record, the previous call's claim record, the shard's heads index (topic -> lowest
--       score of its timeline), the worker's topic set (topic -> its index from 1, ' <index>' -> topic, ' n' -> count,
--       ' repair' -> when its heads are next rebuilt; no topic holds a space, so the fields never collide).
-- ARGV: lease_ms, claim_limit, cutoff ('' = now), channel_prefix, the shard's tag, rotation (which due topic to
--       claim from first, for fairness), the safety interval in ms (how often the heads of the set's topics are
--       rebuilt; negated: rebuild them in this call too), every settlement in one string, then '' or (to register the set) its number of topics and the
--       topics in order.
--       A settlement is '<kind><topic index>:<token>:<id length>:<id>', followed for 'r' (retry) by
--       '<delay_ms>:<error length>:<error>' and for 'd' (dead letter) by '<error length>:<error>'.
--       Kinds: a = ack, r = retry, d = dead letter, l = release the lease, n = renew the lease.
--       Lengths are in bytes. One string rather than three or more arguments per settlement: a busy
--       worker settles hundreds per call, and every argument costs the client more than the bytes.
-- Returns {now, next_due (-1 if none), stale ops, due timers examined (claimed or buried), claims, buried},
--          where claims is one string: per claimed timer
--          '<attempts>:<payload length>:<topic index>:<token>:<id length>:<id><payload>', whose middle
--          ('<topic index>:<token>:<id length>:<id>') is what the settlement of that run repeats. A token
--          is '<claim counter>.<n>.<due ms>'. buried is one string too: per due timer whose payload was
--          missing (dead-lettered here, so that its worker logs and counts it) '<topic index>:<id length>:<id>'.
--          next_due is -2 when the topic set is not on the server (a first call, a flushed or failed-over server):
--          then nothing was done, and the worker sends the call again with the set.
-- now (rounded down) decides what is due; now_up (rounded up) is the base of every score computed here.
local now, now_up = server_now_ms()
local lease_ms = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local cutoff = now
if ARGV[3] ~= '' then
  cutoff = math.min(now, tonumber(ARGV[3]))
end
local channel_prefix = ARGV[4]
local tag = ARGV[5]
local rotation = tonumber(ARGV[6])
local repair_every_ms = tonumber(ARGV[7])
-- Negative when the worker's probe found a timeline due that the index is not: rebuild now, not at the schedule.
local repair_now = repair_every_ms < 0
repair_every_ms = math.abs(repair_every_ms)
local wire = ARGV[8]
local dead, heads, topic_set = KEYS[1], KEYS[4], KEYS[5]
-- Heads of topics of other workers a walk of the index steps over before it gives up on the index and looks at
-- each of this worker's topics instead (see docs/protocol.md): bounds what they cost this worker's call.
local max_foreign = 1000

local n
local repair_at = 0  -- a set registered anew has no ' repair' yet: its heads are rebuilt at once
if ARGV[9] ~= '' then
  n = tonumber(ARGV[9])
  redis.call('DEL', topic_set)
  local fields = {' n', ms(n)}
  for i = 1, n do
    local topic = ARGV[9 + i]
    fields[#fields + 1] = topic
    fields[#fields + 1] = ms(i)
    fields[#fields + 1] = ' ' .. i
    fields[#fields + 1] = topic
  end
  call_sliced('HSET', topic_set, fields)
else
  -- One read for both fields: a command per call saved on every round trip.
  local fields = redis.call('HMGET', topic_set, ' n', ' repair')
  n = tonumber(fields[1])
  if not n then
    return {now, -2, 0, 0, '', ''}
  end
  repair_at = tonumber(fields[2]) or 0
end

local names = {}  -- topic index -> topic
local function topic_name(ti)
  local topic = names[ti]
  if topic == nil then
    topic = redis.call('HGET', topic_set, ' ' .. ti) or false
    names[ti] = topic
  end
  return topic
end
local function topic_keys(topic)
  return tag .. ':timeline:' .. topic, tag .. ':payloads:' .. topic, tag .. ':state:' .. topic
end
-- Topics whose timeline this call wrote: their heads are brought up to date once each, after the writes.
local touched = {}

-- Once per safety interval for the set (whichever of its workers' calls comes first; at once for a set registered
-- anew), before claiming: the heads of every topic of the set, so that a timeline written by a process of an
-- earlier version, which keeps no index, is in it within one interval.
if repair_now or now >= repair_at then
  redis.call('HSET', topic_set, ' repair', ms(now + repair_every_ms))
  local all = redis.call('HGETALL', topic_set)
  for j = 1, #all, 2 do
    local topic = all[j]
    if string.sub(topic, 1, 1) ~= ' ' then
      update_head(heads, tag .. ':timeline:' .. topic, topic)
    end
  end
end

local record, previous_record = KEYS[2], KEYS[3]
-- The previous call's reply arrived (this call comes after it), so its record is no longer needed.
redis.call('DEL', previous_record)

-- Every settlement acts only while its token still matches: a set_timer or remove_timer
-- made while the handler ran has dropped the lease, and must not be undone.
local ops = {}
local ops_by_topic = {}
local at = 1
while at <= #wire do
  local kind, ti, token, id_length, id_at = string.match(wire, '^(%a)(%d+):([%d%.]*):(%d+):()', at)
  at = id_at + tonumber(id_length)
  local op = {kind = kind, ti = tonumber(ti), token = token, id = string.sub(wire, id_at, at - 1)}
  if kind == 'r' then
    local delay, err_length, err_at = string.match(wire, '^(%d+):(%d+):()', at)
    at = err_at + tonumber(err_length)
    op.delay, op.err = tonumber(delay), string.sub(wire, err_at, at - 1)
  elseif kind == 'd' then
    local err_length, err_at = string.match(wire, '^(%d+):()', at)
    at = err_at + tonumber(err_length)
    op.err = string.sub(wire, err_at, at - 1)
  end
  ops[#ops + 1] = op
  local group = ops_by_topic[op.ti]
  if not group then
    group = {}
    ops_by_topic[op.ti] = group
  end
  group[#group + 1] = op
end
-- One read of the stored payloads per topic, then the checks. A topic index the set does not have (no run of
-- this set names one) leaves its settlements without a holder: stale.
for ti, group in pairs(ops_by_topic) do
  local topic = topic_name(ti)
  if topic then
    local ids = {}
    for j, op in ipairs(group) do
      ids[j] = op.id
    end
    local _, payloads = topic_keys(topic)
    local stored = call_sliced('HMGET', payloads, ids)
    for j, op in ipairs(group) do
      op.stored = stored[j]
      op.attempts, op.held_by = run_of(stored[j])
    end
  end
end

local stale = 0
local acked = {}  -- topic -> {ids, errors}, removed in one batch per topic below
for _, op in ipairs(ops) do
  local kind, id = op.kind, op.id
  if op.held_by ~= op.token then
    stale = stale + 1
  else
    -- Held, so the read above found its topic.
    local topic = names[op.ti]
    touched[topic] = true
    if kind == 'a' then
      -- The commonest settlement by far: no keys built, no command of its own.
      local batch = acked[topic]
      if not batch then
        batch = {ids = {}, errors = {}}
        acked[topic] = batch
      end
      local ids = batch.ids
      ids[#ids + 1] = id
      if op.attempts > 1 then
        -- Only a timer that ran before can have an error on record.
        batch.errors[#batch.errors + 1] = 'e:' .. id
      end
    else
      local timeline, payloads, state = topic_keys(topic)
      if kind == 'n' then
        redis.call('ZADD', timeline, 'XX', ms(now_up + lease_ms), id)
      elseif kind == 'r' then
        local _, _, json = unpack_stored(op.stored)
        redis.call('HSET', payloads, id, op.attempts .. ':|' .. json)
        redis.call('HSET', state, 'e:' .. id, op.err)
        schedule(timeline, channel_prefix .. topic, id, now_up + op.delay)
      elseif kind == 'l' then
        -- A handed-back lease is not an attempt.
        local attempts = op.attempts - 1
        local _, _, json = unpack_stored(op.stored)
        if attempts > 0 then
          redis.call('HSET', payloads, id, attempts .. ':|' .. json)
        else
          redis.call('HSET', payloads, id, json)
        end
        schedule(timeline, channel_prefix .. topic, id, now_up)
      elseif kind == 'd' then
        bury(timeline, payloads, state, dead, topic, id, op.err, now)
      end
    end
  end
end
for topic, batch in pairs(acked) do
  local timeline, payloads, state = topic_keys(topic)
  call_sliced('ZREM', timeline, batch.ids)
  call_sliced('HDEL', payloads, batch.ids)
  if #batch.errors > 0 then
    call_sliced('HDEL', state, batch.errors)
  end
end

local reply = {now, -1, stale, 0}
local claims = {}
local buried = {}
-- What a replay needs of each claim: '<topic index>:<token>:<id length>:<id>'. No payload: the replay reads
-- it again from the payloads hash (where it checks the token anyway), so a lease costs no second copy.
local recorded_claims = {}

-- Every number written into a string costs Lua a conversion (about as much as a server command's share of a
-- claim): `place` is the topic index with its colon and `attempts` the attempts with theirs, each converted once.
local n_claims, n_recorded = 0, 0
local function add_claim(place, attempts, token, id, body)
  local key = place .. token .. ':' .. #id .. ':'
  claims[n_claims + 1] = attempts .. #body .. ':' .. key
  claims[n_claims + 2] = id
  claims[n_claims + 3] = body
  n_claims = n_claims + 3
  recorded_claims[n_recorded + 1] = key
  recorded_claims[n_recorded + 2] = id
  n_recorded = n_recorded + 2
end

local recorded = redis.call('GET', record)
if recorded then
  -- This call ran before and its reply never arrived (redis-py re-sends after a connection error, and the
  -- worker retries with the same record): hand back the same claims, where their leases still hold,
  -- rather than claim others and leave these leased to nobody until the lease ends.
  local at = 1
  while at <= #recorded do
    local ti, token, id_length, id_at = string.match(recorded, '^(%d+):([%d%.]*):(%d+):()', at)
    at = id_at + tonumber(id_length)
    local id = string.sub(recorded, id_at, at - 1)
    local _, payloads = topic_keys(topic_name(tonumber(ti)) or '')
    -- The claim wrote '<attempts>:<token>|' before the payload: while the token holds, both are still the claim's.
    local attempts, held_by, json = unpack_stored(redis.call('HGET', payloads, id))
    if held_by == token then
      add_claim(ti .. ':', attempts .. ':', token, id, json)
    end
  end
  reply[4] = limit
else
  -- The due topics of this worker: from the heads index, earliest head first, stepping over other workers' topics;
  -- past max_foreign of those, every topic of the set instead (what each round trip cost before the index).
  local candidates = {}
  local every_topic = false
  local foreign = 0
  local page_size = 256
  local offset = 0
  while #candidates < limit do
    local page = redis.call('ZRANGEBYSCORE', heads, '-inf', ms(cutoff), 'LIMIT', offset, page_size)
    -- The page's places in the set in one read (false for another worker's topic).
    local places = #page > 0 and redis.call('HMGET', topic_set, unpack(page)) or {}
    for j, topic in ipairs(page) do
      local ti = places[j]
      if ti then
        candidates[#candidates + 1] = tonumber(ti)
        names[tonumber(ti)] = topic
      else
        foreign = foreign + 1
      end
    end
    if #page < page_size then
      break
    end
    if foreign > max_foreign then
      candidates, every_topic = {}, true
      for ti = 1, n do
        candidates[ti] = ti
      end
      break
    end
    offset = offset + page_size
  end
  local remaining = limit
  for step = 0, #candidates - 1 do
    if remaining <= 0 then
      break
    end
    -- The first due topic rotates between calls, so a busy topic can't starve the others.
    local ti = candidates[((rotation + step) % #candidates) + 1]
    local topic = topic_name(ti)
    local timeline, payloads, state = topic_keys(topic)
    local due = redis.call('ZRANGEBYSCORE', timeline, '-inf', ms(cutoff), 'WITHSCORES', 'LIMIT', 0, remaining)
    if #due > 0 or not every_topic then
      -- Claimed from, or a head the index held as due that was not (written by an earlier version): repaired.
      touched[topic] = true
    end
    local ids, due_ms = {}, {}
    for j = 1, #due, 2 do
      ids[#ids + 1] = due[j]
      -- Digits only, as tokens are: a score below 0 (-inf, written by hand) reads as 0.
      due_ms[#due_ms + 1] = ms(math.max(0, math.ceil(tonumber(due[j + 1]))))
    end
    if #ids > 0 then
      remaining = remaining - #ids
      reply[4] = reply[4] + #ids
      -- The lease is the score: if this worker dies, the timer is due again when the lease ends.
      local expiry = ms(now_up + lease_ms)
      local zadd = {}
      for j, id in ipairs(ids) do
        zadd[2 * j - 1] = expiry
        zadd[2 * j] = id
      end
      call_sliced('ZADD', timeline, zadd)
      local bodies = call_sliced('HMGET', payloads, ids)
      -- Tokens never repeat, even if the state hash is deleted by hand (a restarted counter would hand out
      -- old tokens again, and a stale worker's ack could then delete a live run): the counter never falls
      -- behind the server's clock in ms * 1000, and a claim call takes far longer than a microsecond, so a
      -- counter that restarts from the clock starts above every token it gave before.
      local seq = redis.call('HINCRBY', state, '#seq', 1)
      if seq < now_up * 1000 then
        seq = now_up * 1000
        redis.call('HSET', state, '#seq', ms(seq))
      end
      local token_prefix = ms(seq) .. '.'
      local place = ti .. ':'
      local hset, n_hset = {}, 0
      for j, id in ipairs(ids) do
        if bodies[j] then
          -- The token ends with the due time, which the lease's score hides (get_timer shows it).
          local token = token_prefix .. j .. '.' .. due_ms[j]
          local attempts, _, json = unpack_stored(bodies[j])
          local attempts_colon = (attempts + 1) .. ':'
          hset[n_hset + 1] = id
          hset[n_hset + 2] = attempts_colon .. token .. '|' .. json
          n_hset = n_hset + 2
          add_claim(place, attempts_colon, token, id, json)
        else
          bury(timeline, payloads, state, dead, topic, id, 'payload missing', now)
          buried[#buried + 1] = ti .. ':' .. #id .. ':' .. id
        end
      end
      if n_hset > 0 then
        call_sliced('HSET', payloads, hset)
      end
    end
  end
  if #claims > 0 then
    -- The record names the claims (topic, token, id); it outlives no lease.
    redis.call('SET', record, table.concat(recorded_claims), 'PX', lease_ms)
  end
end
reply[5] = table.concat(claims)
reply[6] = table.concat(buried)

for topic in pairs(touched) do
  update_head(heads, tag .. ':timeline:' .. topic, topic)
end

-- Next due: the lowest head of this worker's topics, the first of the set's topics met walking the index from its
-- start; past max_foreign heads of other topics, the lowest of the set's own heads, one by one.
local next_due = nil
local offset = 0
local page_size = 64
while true do
  local page = redis.call('ZRANGE', heads, offset, offset + page_size - 1, 'WITHSCORES')
  local topics = {}
  for j = 1, #page, 2 do
    topics[#topics + 1] = page[j]
  end
  -- Which of the page's topics are the set's, in one read.
  local places = #topics > 0 and redis.call('HMGET', topic_set, unpack(topics)) or {}
  for j = 1, #topics do
    if places[j] then
      next_due = tonumber(page[2 * j])
      break
    end
  end
  if next_due or #page < 2 * page_size then
    break
  end
  offset = offset + page_size
  if offset > max_foreign then
    for ti = 1, n do
      local topic = topic_name(ti)
      local score = topic and redis.call('ZSCORE', heads, topic)
      if score and (not next_due or tonumber(score) < next_due) then
        next_due = tonumber(score)
      end
    end
    break
  end
end
-- Never below 0 (a score written by hand): -1 and -2 say other things.
reply[2] = next_due and math.max(0, next_due) or -1
return reply
