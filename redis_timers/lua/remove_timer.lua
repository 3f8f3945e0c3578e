-- KEYS: timeline, payloads, state. ARGV: id. Returns 1 if a timer was removed.
return forget(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
