-- KEYS: dead, timeline, payloads, state. ARGV: dead-letter field, id, channel.
-- Schedules the parked payload as a fresh timer due now (last write wins) and drops the dead letter.
-- Returns 1, 0 if there is no such dead letter, or -1 if its record is not one `bury` writes (by hand, or by
-- another version): then nothing is written, rather than a timer on the timeline without its payload.
local record = redis.call('HGET', KEYS[1], ARGV[1])
if not record then
  return 0
end
local readable, parked = pcall(cjson.decode, record)
if not readable or type(parked) ~= 'table' or type(parked.payload) ~= 'string' then
  return -1
end
local _, now_up = server_now_ms()
schedule(KEYS[2], ARGV[3], ARGV[2], now_up)
redis.call('HSET', KEYS[3], ARGV[2], parked.payload)
forget_state(KEYS[4], ARGV[2])
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
