-- KEYS: dead, timeline, payloads, state, the shard's heads index. ARGV: dead-letter field, id, channel.
-- Schedules the parked payload as a fresh timer due now (last write wins) and drops the dead letter.
-- Returns 1, 0 if there is no such dead letter, or -1 if its record is not one `bury` writes (by hand, or by
-- another version): then nothing is written, rather than a timer on the timeline without its payload.
local record = redis.call('HGET', KEYS[1], ARGV[1])
if not record then
  return 0
end
local readable, parked = pcall(cjson.decode, record)
-- An object, not an array (cjson decodes both as tables).
if not readable or type(parked) ~= 'table' or not string.match(record, '^%s*{') then
  return -1
end
-- As dead_letters() lists it: a missing payload is an empty one, any other type is unreadable.
local payload = parked.payload
if payload == nil then
  payload = ''
elseif type(payload) ~= 'string' then
  return -1
end
local _, now_up = server_now_ms()
schedule(KEYS[2], ARGV[3], ARGV[2], now_up)
redis.call('HSET', KEYS[3], ARGV[2], payload)
forget_state(KEYS[4], ARGV[2])
update_head(KEYS[5], KEYS[2], topic_of(KEYS[2]))
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
