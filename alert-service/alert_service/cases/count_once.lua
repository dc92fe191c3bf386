-- Add to one rule's quality counters once per marker (an alert counted, an alert labelled).
--
-- KEYS[1] the rule's counters hash   KEYS[2] the markers already counted (zset, bounded)
-- ARGV[1] marker ('a:<alertId>' or 'l:<alertId>')   ARGV[2] now (ms)   ARGV[3] markers kept
-- ARGV[4..] field, increment, field, increment, ...
--
-- Returns 1 when counted now, 0 when the marker was counted before (a redelivery, or a
-- retry after a crash between the case step and this one). Both keys carry the rule's id
-- as their hash tag (one slot).

if redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
for i = 4, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if excess > 0 then
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, excess - 1)
end
return 1
