-- KEYS: timeline, payloads, state. ARGV: id. Returns {score, payload, attempts, lease token, last error} or nil.
local id = ARGV[1]
local score = redis.call('ZSCORE', KEYS[1], id)
if not score then
  return false
end
local state = redis.call('HMGET', KEYS[3], 'a:' .. id, 'l:' .. id, 'e:' .. id)
return {score, redis.call('HGET', KEYS[2], id), state[1], state[2], state[3]}
