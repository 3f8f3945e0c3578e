#!lua flags=no-writes,allow-cross-slot-keys
-- An idle worker's safety check of every shard one node holds, in one call. A cluster routes a call by its declared
-- keys, which must share one slot: KEYS[1] is the first shard's heads index, and the script reads the other keys,
-- of other slots, by name (allowed by the flag for keys of the node's own slots; another node's key is an error
-- reply, and so is a slot on its way out: ASK or TRYAGAIN). Read-only. No prelude: the flags must come first.
-- KEYS: the first shard's heads index, which routes the call (its name is in ARGV too).
-- ARGV: how many timelines each shard's part names (k), then per shard its heads index, the worker's topic set
--       there, and k timelines: a batch of the worker's topics, which the worker moves on from probe to probe.
-- Per shard, the heads index gives the lowest head of the worker's topics: a walk of pages of 64 entries from the
-- index's start, stepping over other workers' topics; past 1,000 of those, or without the topic set (a flushed
-- server), the shard is said due, and its claim, which handles both, finds out. The index costs the same whatever
-- the number of topics. A process of an earlier version writes a timeline and no index entry: the batch's timelines
-- are read too, and one that is due while the index says otherwise asks for the index to be rebuilt (the claim that
-- follows does it at once, instead of at its own schedule, which may be an interval on). So a timer written without
-- the index is found within ceil(topics / k) probes.
-- Returns {now (server ms, rounded down), then per shard the lowest score found ('' if none), as the server wrote
--          it, and 1 if the claim must rebuild the index first, else 0}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local per_shard = tonumber(ARGV[1])
local max_foreign = 1000
local page_size = 64
local reply = {now}

-- The lowest head of the set's topics in the index (score, as written), '' if none; '0' when unknown.
local function indexed_lowest(heads, topic_set)
  if redis.call('EXISTS', topic_set) == 0 then
    return '0'
  end
  local foreign, offset = 0, 0
  while foreign <= max_foreign do
    local page = redis.call('ZRANGE', heads, offset, offset + page_size - 1, 'WITHSCORES')
    if #page == 0 then
      return ''
    end
    local topics = {}
    for j = 1, #page, 2 do
      topics[#topics + 1] = page[j]
    end
    local places = redis.call('HMGET', topic_set, unpack(topics))
    for j = 1, #topics do
      if places[j] then
        return page[2 * j]
      end
      foreign = foreign + 1
    end
    offset = offset + page_size
  end
  return '0'
end

for first = 2, #ARGV, per_shard + 2 do
  local heads = ARGV[first]
  local lowest_text = indexed_lowest(heads, ARGV[first + 1])
  local lowest = lowest_text ~= '' and tonumber(lowest_text) or nil
  local rebuild = 0
  for key = first + 2, first + per_shard + 1 do
    local timeline = ARGV[key]
    local head = redis.call('ZRANGE', timeline, 0, 0, 'WITHSCORES')
    if head[1] and tonumber(head[2]) <= now then
      local topic = string.sub(timeline, string.find(timeline, '}:timeline:', 1, true) + 11)
      local indexed = redis.call('ZSCORE', heads, topic)
      if not indexed or tonumber(indexed) > now then
        rebuild = 1
      end
      if lowest == nil or tonumber(head[2]) < lowest then
        lowest, lowest_text = tonumber(head[2]), head[2]
      end
    end
  end
  reply[#reply + 1] = lowest_text
  reply[#reply + 1] = rebuild
end
return reply
