-- One page of the original timeline (KEYS[1]): the entries ranked ARGV[1] to ARGV[2]. ARGV[3] is the separator,
-- ARGV[4..] the topics this worker handles. The reply is how many entries the page holds, then only the entries
-- of handled topics (member, score, flat under RESP2 and RESP3 alike): a page of other topics' timers costs the
-- client one number to parse, not a thousand strings. A member's topic ends at its first separator, as the
-- client splits it.
local page = redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2], 'WITHSCORES')
local handled = {}
for i = 4, #ARGV do
  handled[ARGV[i]] = true
end
local reply = {#page / 2}
for i = 1, #page, 2 do
  local at = string.find(page[i], ARGV[3], 1, true)
  if at and handled[string.sub(page[i], 1, at - 1)] then
    reply[#reply + 1] = page[i]
    reply[#reply + 1] = page[i + 1]
  end
end
return reply
