-- KEYS: timeline, legacy receipts. ARGV: HSCAN cursor, then '1' for the receipts of ids off the timeline only.
-- A page of the import's receipts: {next cursor, then (id, receipt, 1 if the id is on the timeline else 0)...}.
local page = redis.call('HSCAN', KEYS[2], ARGV[1], 'COUNT', 500)
local reply = {page[1]}
local fields = page[2]
local only_done = ARGV[2] == '1'
for i = 1, #fields, 2 do
  local alive = redis.call('ZSCORE', KEYS[1], fields[i]) and 1 or 0
  if alive == 0 or not only_done then
    reply[#reply + 1] = fields[i]
    reply[#reply + 1] = fields[i + 1]
    reply[#reply + 1] = alive
  end
end
return reply
