-- KEYS: timeline, payloads. ARGV: highest score (ms, or '+inf'), '1' to return payloads too.
-- Returns a flat array, earliest first: id, score (and the payload JSON, without its run and trace prefixes) of every
-- timer scored up to ARGV[1]. Unbounded on purpose: it serves the original library's fetch_all_timers and
-- fetch_ready_timers, which return everything.
local rows = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES')
if ARGV[2] ~= '1' then
  return rows
end
local listed = {}
for i = 1, #rows, 2 do
  local _, _, payload = unpack_stored(redis.call('HGET', KEYS[2], rows[i]))
  listed[#listed + 1] = rows[i]
  listed[#listed + 1] = rows[i + 1]
  listed[#listed + 1] = untraced(payload) or ''
end
return listed
