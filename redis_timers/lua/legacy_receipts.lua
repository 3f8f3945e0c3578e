-- KEYS: timeline, legacy receipts. ARGV: HSCAN cursor.
-- A page of the import's receipts: {next cursor, then (id, receipt, 1 if the id is on the timeline else 0)...}.
local page = redis.call('HSCAN', KEYS[2], ARGV[1], 'COUNT', 500)
local reply = {page[1]}
local fields = page[2]
for i = 1, #fields, 2 do
  reply[#reply + 1] = fields[i]
  reply[#reply + 1] = fields[i + 1]
  reply[#reply + 1] = redis.call('ZSCORE', KEYS[1], fields[i]) and 1 or 0
end
return reply
