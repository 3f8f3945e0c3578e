-- KEYS: the timeline of each topic, all in one shard. ARGV: the lowest score (inclusive, or '-inf'), the highest
-- (exclusive: '(' and ms, or '+inf'), the histogram's bucket in ms and its number of buckets (0 for none), the lease
-- window in ms (stats only, else 0), the overdue age in ms.
-- Returns {now ms, per topic {ZCOUNT lowest..highest, ZCARD, due now (score <= now), before now (< now), overdue,
-- head score or '', the first score after now + window or '', then each bucket's ZCOUNT [now + i * bucket, now + (i + 1) * bucket)}}: O(log N) per number.
local now = server_now_ms()
local lowest, highest = ARGV[1], ARGV[2]
local bucket, buckets, window, overdue_ms = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local replies = {ms(now)}
for t = 1, #KEYS do
  local timeline = KEYS[t]
  local head = redis.call('ZRANGE', timeline, 0, 0, 'WITHSCORES')[2] or ''
  local after_window = redis.call('ZRANGEBYSCORE', timeline, '(' .. ms(now + window), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  local reply = {
    redis.call('ZCOUNT', timeline, lowest, highest),
    redis.call('ZCARD', timeline),
    redis.call('ZCOUNT', timeline, '-inf', ms(now)),
    redis.call('ZCOUNT', timeline, '-inf', '(' .. ms(now)),
    redis.call('ZCOUNT', timeline, '-inf', ms(now - overdue_ms)),
    head,
    after_window[2] or '',
  }
  for i = 0, buckets - 1 do
    reply[#reply + 1] = redis.call('ZCOUNT', timeline, ms(now + i * bucket), '(' .. ms(now + (i + 1) * bucket))
  end
  replies[#replies + 1] = reply
end
return replies
