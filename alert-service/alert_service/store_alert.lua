-- Append one alert to the alerts stream once: the stream-side half of storing an alert.
--
-- KEYS[1] alerts stream   KEYS[2] appended index (hash alertId -> stream id)
-- KEYS[3] appended order (zset of alertIds scored by stream id: oldest trimmed first)
-- ARGV[1] alertId  ARGV[2] alert JSON  ARGV[3] userId  ARGV[4] stream MAXLEN ~
-- ARGV[5] index bound (entries kept in the appended index)
--
-- Returns {1, streamId} when appended now, {0, streamId} when it was appended before (a
-- redelivery, or the same alert twice in a batch: nothing is written).
--
-- Every key is in the stream's cluster slot (the index keys carry the stream's name as
-- their hash tag), so the script is legal on a Redis Cluster. The alert's record lives in
-- another slot and is written after this script by the caller; the index is what makes a
-- retry after a crash between the two find the entry instead of adding a second one.

for i, want in pairs({[1] = 'stream', [2] = 'hash', [3] = 'zset'}) do
  local kind = redis.call('TYPE', KEYS[i])['ok']
  if kind ~= want and kind ~= 'none' then
    return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' holds a ' .. kind .. ', not a ' .. want)
  end
end

local existing = redis.call('HGET', KEYS[2], ARGV[1])
if existing then
  return {0, existing}
end

local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*',
  'alertId', ARGV[1], 'userId', ARGV[3], 'alert', ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], id)
local ms, seq = string.match(id, '^([0-9]+)%-([0-9]+)$')
redis.call('ZADD', KEYS[3], tonumber(ms) + math.min(tonumber(seq), 4095) / 4096, ARGV[1])

local excess = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[5])
if excess > 0 then
  local old = redis.call('ZRANGE', KEYS[3], 0, excess - 1)
  redis.call('HDEL', KEYS[2], unpack(old))
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, excess - 1)
end
return {1, id}
