-- KEYS: timeline, payloads, state, legacy receipts, the shard's heads index. ARGV: channel, then (id, due ms, payload, expected receipt)
-- quadruples. Imports timers the original library wrote. Each import leaves a receipt (due ms and SHA1 of the
-- payload), so that the next passes can tell what a process of the original library changed since.
-- Returns how many timers were (re)scheduled.
local imported = 0
for o = 2, #ARGV, 4 do
  local id, due, body, expected = ARGV[o], ARGV[o + 1], ARGV[o + 2], ARGV[o + 3]
  local receipt = due .. ':' .. redis.sha1hex(body)
  local previous = redis.call('HGET', KEYS[4], id)
  local import
  if expected ~= '' then
    -- A payload rewritten at the imported due time, found by following the receipt `expected`: only while that
    -- receipt holds, since another pass may have imported a newer write (with another due time) meanwhile.
    import = previous == expected
  elseif previous == receipt then
    -- The same receipt: this very write was imported already (a pass ended before taking it off the
    -- original timeline), so importing it again could undo what happened to the timer since.
    import = false
  else
    -- A receipt of another write: the original library wrote the timer again after it was imported,
    -- which is newer than the import. No receipt: a timer already under the new keys is newer and wins.
    import = previous or not redis.call('ZSCORE', KEYS[1], id)
    if not import then
      redis.call('HSET', KEYS[4], id, receipt)
    end
  end
  if import then
    schedule(KEYS[1], ARGV[1], id, tonumber(due))
    redis.call('HSET', KEYS[2], id, body)
    forget_state(KEYS[3], id)
    redis.call('HSET', KEYS[4], id, receipt)
    imported = imported + 1
  end
end
if imported > 0 then
  update_head(KEYS[5], KEYS[1], topic_of(KEYS[1]))
end
return imported
