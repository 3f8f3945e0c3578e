-- KEYS: the original payloads hash. ARGV: (member, SHA1 of the payload it was imported with) pairs.
-- What became of each imported payload's copy, without sending back the copies that did not change (a pass
-- checks every imported timer that is not done yet): 0 gone, 1 unchanged, else the new payload itself.
local reply = {}
for o = 1, #ARGV, 2 do
  local body = redis.call('HGET', KEYS[1], ARGV[o])
  if not body then
    reply[#reply + 1] = 0
  elseif redis.sha1hex(body) == ARGV[o + 1] then
    reply[#reply + 1] = 1
  else
    reply[#reply + 1] = body
  end
end
return reply
