-- KEYS: timeline, payloads, state. ARGV: id.
-- Returns {due ms, payload, attempts, lease end ms (false unless a lease is live), last error} or nil.
-- While leased the score is the lease's end, and the due time is the last part of the run's token.
local id = ARGV[1]
local score = redis.call('ZSCORE', KEYS[1], id)
if not score then
  return false
end
local attempts, token, payload = unpack_stored(redis.call('HGET', KEYS[2], id))
local due, lease = score, false
if token ~= '' then
  -- Tokens of older versions carry no due time: their score is all there is.
  due = string.match(token, '^%d+%.%d+%.(%d+)$') or score
  -- A lease that ran out (its worker died or lost Redis) holds nothing: the timer is due again.
  if tonumber(score) > server_now_ms() then
    lease = score
  end
end
return {due, untraced(payload), attempts, lease, redis.call('HGET', KEYS[3], 'e:' .. id)}
