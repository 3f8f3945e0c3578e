-- KEYS: timeline, payloads, state, legacy receipts, the shard's heads index. ARGV: (kind, id, receipt) triples, kind 'c' or 'd'.
-- Acts only while the receipt is the one the pass read (another pass may have imported a newer write):
--   c: the original library cancelled the timer after it was imported: remove it, drop the receipt;
--   d: the imported timer is done (fired, or removed under the new keys): drop the receipt.
-- Returns the ids whose receipt was dropped.
local dropped = {}
local cancelled = false
for o = 1, #ARGV, 3 do
  local kind, id, receipt = ARGV[o], ARGV[o + 1], ARGV[o + 2]
  if redis.call('HGET', KEYS[4], id) == receipt then
    if kind == 'c' then
      forget(KEYS[1], KEYS[2], KEYS[3], id)
      cancelled = true
    end
    if kind == 'c' or not redis.call('ZSCORE', KEYS[1], id) then
      redis.call('HDEL', KEYS[4], id)
      dropped[#dropped + 1] = id
    end
  end
end
if cancelled then
  update_head(KEYS[5], KEYS[1], topic_of(KEYS[1]))
end
return dropped
