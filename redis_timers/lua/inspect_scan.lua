-- KEYS: any key of the shard (so that a cluster sends the call to the node that holds the shard's tag).
-- ARGV: 'keys' or 'hash', the cursor, the MATCH pattern, the COUNT.
-- 'keys': one SCAN page of the node's keys, {next cursor, the node's run id, keys...} (the run id tells the shards
-- that share a node, whose keys one pass has read); 'hash': one HSCAN page of KEYS[1],
-- {next cursor, field, value, ...}. Bounded by COUNT (a hash small enough for a compact encoding comes whole).
-- A script so that the reply is a flat array under RESP2 and RESP3 alike, and reaches the shard's node.
local page
if ARGV[1] == 'keys' then
  page = redis.call('SCAN', ARGV[2], 'MATCH', ARGV[3], 'COUNT', ARGV[4])
else
  page = redis.call('HSCAN', KEYS[1], ARGV[2], 'MATCH', ARGV[3], 'COUNT', ARGV[4])
end
local reply = {page[1]}
if ARGV[1] == 'keys' then
  reply[2] = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)') or ''
end
for i = 1, #page[2] do
  reply[#reply + 1] = page[2][i]
end
return reply
