-- KEYS: dead, timeline, payloads, state. ARGV: dead-letter field, id, channel.
-- Schedules the parked payload as a fresh timer due now (last write wins) and drops the dead letter.
local record = redis.call('HGET', KEYS[1], ARGV[1])
if not record then
  return 0
end
local parked = cjson.decode(record)
local _, now_up = server_now_ms()
schedule(KEYS[2], ARGV[3], ARGV[2], now_up)
redis.call('HSET', KEYS[3], ARGV[2], parked.payload)
forget_state(KEYS[4], ARGV[2])
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
