-- KEYS: timeline, payloads, state. ARGV: id. Returns {score, payload, attempts, lease token, last error} or nil.
local id = ARGV[1]
local score = redis.call('ZSCORE', KEYS[1], id)
if not score then
  return false
end
local state = redis.call('HMGET', KEYS[3], 'r:' .. id, 'e:' .. id)
local token = token_of(state[1])
if token == '' then
  token = false
end
return {score, redis.call('HGET', KEYS[2], id), attempts_of(state[1]), token, state[2]}
