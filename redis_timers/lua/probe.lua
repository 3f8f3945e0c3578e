#!lua flags=no-writes,allow-cross-slot-keys
-- An idle worker's safety check of every shard one node holds, in one call. A cluster routes a call by its declared
-- keys, which must share one slot: KEYS[1] is the first shard's first timeline, and the script reads the others,
-- of other slots, by name (allowed by the flag for keys of the node's own slots; another node's key is an error
-- reply, and so is a slot on its way out: ASK or TRYAGAIN). Read-only. No prelude: the flags must come first.
-- KEYS: one timeline, which routes the call (its name is in ARGV too).
-- ARGV: how many timelines each shard has (one per topic of the worker), then every shard's, shard after shard.
-- The timelines, not the heads index: a process of an earlier version writes a timeline and no index entry, and
-- its timers must still be found within one interval (the claim that follows rebuilds the index).
-- Returns {now (server ms, rounded down), then per shard the lowest score of those timelines ('' if all are
--          empty), as the server wrote it}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local per_shard = tonumber(ARGV[1])
local reply = {now}
for first = 2, #ARGV, per_shard do
  local lowest, lowest_text = nil, ''
  for key = first, first + per_shard - 1 do
    local head = redis.call('ZRANGE', ARGV[key], 0, 0, 'WITHSCORES')
    if head[1] then
      local score = tonumber(head[2])
      if lowest == nil or score < lowest then
        lowest, lowest_text = score, head[2]
      end
    end
  end
  reply[#reply + 1] = lowest_text
end
return reply
