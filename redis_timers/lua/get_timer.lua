-- KEYS: timeline, payloads, state. ARGV: id. Returns {score, payload, attempts, lease token, last error} or nil.
local id = ARGV[1]
local score = redis.call('ZSCORE', KEYS[1], id)
if not score then
  return false
end
local attempts, token, payload = unpack_stored(redis.call('HGET', KEYS[2], id))
if token == '' then
  token = false
end
return {score, payload, attempts, token, redis.call('HGET', KEYS[3], 'e:' .. id)}
