-- KEYS: the layout key, the one-shard dead letters, then the one-shard timeline of each handled topic (all under
-- the one-shard tag, so one slot). ARGV: this process's shard count.
-- Returns {0} when this process may run, {1, recorded count} when the namespace records another count, or
-- {2, key} when a process of several shards finds data written with one. Records the count (N > 1) when none is.
local recorded = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  -- One shard writes nothing: a namespace that never recorded a count stays exactly as earlier versions left it.
  if recorded and recorded ~= '1' then
    return {1, recorded}
  end
  return {0}
end
if recorded and recorded ~= ARGV[1] then
  return {1, recorded}
end
if redis.call('HLEN', KEYS[2]) > 0 then
  return {2, KEYS[2]}
end
for i = 3, #KEYS do
  -- ZRANGE rather than EXISTS: the documented ACL grants it already.
  if #redis.call('ZRANGE', KEYS[i], 0, 0) > 0 then
    return {2, KEYS[i]}
  end
end
if not recorded then
  redis.call('SET', KEYS[1], ARGV[1])
end
return {0}
