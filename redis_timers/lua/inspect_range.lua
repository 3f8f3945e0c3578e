-- KEYS: timeline, payloads, state of each topic (three per topic), all in one shard.
-- ARGV: filter ('all', or 'running': only entries a handler holds a live lease on), the most entries to examine per
-- topic, the most to return per topic, the lowest score (inclusive, or '-inf'), the highest (exclusive, or '+inf'; with
-- 'running' the lease window in ms after now instead), then per topic its position: a kind ('', 'ge' score, 'gt'
-- score, 'after' score and member: the entries after (score, member) in the ZSET's own order), a score, a member.
-- Returns {now ms, per topic {exhausted 0/1, last examined score, its member, the score of the first entry examined
-- and not returned (or ''), then per entry returned: id, score, attempts, token, payload JSON, last error or false}}.
-- Bounded: per topic at most the examined entries, found by rank with ZCOUNT and a binary search over one score's
-- members (O(log N) calls each), never a scan of the ZSET.
local filter, budget, wanted = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now = server_now_ms()
local lowest, highest = ARGV[4], ARGV[5]
if filter == 'running' then
  lowest, highest = '(' .. ms(now), ms(now + tonumber(ARGV[5]))
end

-- Byte order, as the ZSET orders members: Lua's own `<` follows the server's collation locale.
local function bytes_after(a, b)
  if a == b then
    return false
  end
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      return x > y
    end
  end
  return #a > #b
end

-- The rank of the first entry above a bound given as ZCOUNT understands it ('(' for an exclusive one).
local function rank_above(timeline, bound)
  if bound == '-inf' then
    return 0
  end
  if string.sub(bound, 1, 1) == '(' then
    return redis.call('ZCOUNT', timeline, '-inf', string.sub(bound, 2))
  end
  return redis.call('ZCOUNT', timeline, '-inf', '(' .. bound)
end

local function position_rank(timeline, kind, score, member)
  if kind == 'ge' then
    return redis.call('ZCOUNT', timeline, '-inf', '(' .. score)
  elseif kind == 'gt' then
    return redis.call('ZCOUNT', timeline, '-inf', score)
  elseif kind == 'after' then
    local low = redis.call('ZCOUNT', timeline, '-inf', '(' .. score)
    local high = redis.call('ZCOUNT', timeline, '-inf', score)
    while low < high do
      local middle = math.floor((low + high) / 2)
      if bytes_after(redis.call('ZRANGE', timeline, middle, middle)[1], member) then
        high = middle
      else
        low = middle + 1
      end
    end
    return low
  end
  return 0
end

local replies = {ms(now)}
for t = 1, #KEYS / 3 do
  local timeline, payloads, state = KEYS[3 * t - 2], KEYS[3 * t - 1], KEYS[3 * t]
  local at = 6 + 3 * (t - 1)
  local first = math.max(rank_above(timeline, lowest), position_rank(timeline, ARGV[at], ARGV[at + 1], ARGV[at + 2]))
  local stop = redis.call('ZCOUNT', timeline, '-inf', highest) - 1
  local last = math.min(stop, first + budget - 1)
  local reply = {1, '', '', ''}
  if first <= last then
    local rows = redis.call('ZRANGE', timeline, first, last, 'WITHSCORES')
    local found = 0
    local examined_to = first - 1
    for i = 1, #rows, 2 do
      local id, score = rows[i], rows[i + 1]
      local attempts, token, payload = unpack_stored(redis.call('HGET', payloads, id))
      examined_to = examined_to + 1
      reply[2], reply[3] = score, id
      if filter == 'all' or token ~= '' then
        found = found + 1
        reply[#reply + 1] = id
        reply[#reply + 1] = score
        reply[#reply + 1] = tostring(attempts)
        reply[#reply + 1] = token
        reply[#reply + 1] = untraced(payload) or ''
        reply[#reply + 1] = redis.call('HGET', state, 'e:' .. id)
        if found >= wanted then
          break
        end
      elseif reply[4] == '' then
        reply[4] = score
      end
    end
    if examined_to < stop then
      reply[1] = 0
    end
  end
  replies[#replies + 1] = reply
end
return replies
