-- Store one alert exactly once: dedup, record, recent lists, stream, stats in one step.
--
-- KEYS[1] alert record      KEYS[2] recent alerts (zset)   KEYS[3] the user's alerts (zset)
-- KEYS[4] alerts stream     KEYS[5] alerts-per-second counter of this second
-- ARGV[1] alertId  ARGV[2] alert JSON  ARGV[3] userId  ARGV[4] record TTL (s)
-- ARGV[5] recent bound  ARGV[6] per-user bound  ARGV[7] stream MAXLEN ~  ARGV[8] stats TTL (s)
--
-- Returns {1, streamId} when stored now, {0, streamId} when it was stored before (a
-- redelivery: nothing is written).
--
-- The recent lists are scored by store time in ms with the stream sequence as the
-- fraction (seq / 4096, exact in a double until 2039), so alerts stored in the same
-- millisecond keep their store order.

-- A key of the wrong type would fail a write half-way (a script is not rolled back):
-- refuse before writing anything, so the alert is either stored whole or not at all.
for i, want in pairs({[2] = 'zset', [3] = 'zset', [4] = 'stream'}) do
  local kind = redis.call('TYPE', KEYS[i])['ok']
  if kind ~= want and kind ~= 'none' then
    return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' holds a ' .. kind .. ', not a ' .. want)
  end
end

local existing = redis.call('GET', KEYS[1])
if existing then
  local previous = string.match(existing, '^{"streamId":"([0-9]+%-[0-9]+)"')
  return {0, previous or ''}
end

local id = redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[7], '*',
  'alertId', ARGV[1], 'userId', ARGV[3], 'alert', ARGV[2])
redis.call('SET', KEYS[1], '{"streamId":"' .. id .. '","alert":' .. ARGV[2] .. '}',
  'EX', ARGV[4])

local ms, seq = string.match(id, '^([0-9]+)%-([0-9]+)$')
local score = tonumber(ms) + math.min(tonumber(seq), 4095) / 4096

redis.call('ZADD', KEYS[2], score, ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[5]) + 1))
redis.call('ZADD', KEYS[3], score, ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(tonumber(ARGV[6]) + 1))
redis.call('EXPIRE', KEYS[3], ARGV[4])

redis.call('INCRBY', KEYS[5], 1)
redis.call('EXPIRE', KEYS[5], ARGV[8])
return {1, id}
