-- One write to one list (fraud_detection.lists): put or delete an entry, after removing
-- up to ARGV[4] entries whose expiry has passed (lazy expiry: lookups already treat them
-- as absent; this keeps the keys from growing). Atomic, and both keys share a hash tag.
--
-- KEYS[1]  hash        value -> entry JSON
-- KEYS[2]  sorted set  value -> expiry (ms since the epoch; +inf: never)
-- ARGV[1]  "put" | "delete"
-- ARGV[2]  the value
-- ARGV[3]  now (ms): an entry is live while its expiry is above it
-- ARGV[4]  most expired entries to remove
-- put:     ARGV[5] expiry score ("+inf" or ms), ARGV[6] entry JSON; an entry that was
--          live keeps its "addedAt".
-- Returns  put: {1 if the entry is new (0 if it replaced a live one), the stored JSON};
--          delete: {1 if a live entry was removed, else 0}.
local entries, expiry = KEYS[1], KEYS[2]
local op, value, now, limit = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])

local expired = redis.call('ZRANGEBYSCORE', expiry, '-inf', now, 'LIMIT', 0, limit)
if #expired > 0 then
  redis.call('ZREM', expiry, unpack(expired))
  redis.call('HDEL', entries, unpack(expired))
end

local function live(score)
  return score and (score == 'inf' or tonumber(score) > now)
end

local was_live = live(redis.call('ZSCORE', expiry, value))

if op == 'put' then
  local entry = cjson.decode(ARGV[6])
  if was_live then
    local old = redis.call('HGET', entries, value)
    if old then
      entry['addedAt'] = cjson.decode(old)['addedAt']
    end
  end
  local text = cjson.encode(entry)
  redis.call('HSET', entries, value, text)
  redis.call('ZADD', expiry, ARGV[5], value)
  return {was_live and 0 or 1, text}
end

redis.call('ZREM', expiry, value)
redis.call('HDEL', entries, value)
return {was_live and 1 or 0}
