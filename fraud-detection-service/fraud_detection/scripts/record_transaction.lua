-- Record one transaction in its user's state; return the state it is evaluated against.
--
-- KEYS[1] window    sorted set: member = transactionId, score = event time (ms)
-- KEYS[2] last      JSON of the user's latest transaction by event time
-- KEYS[3] snapshot  JSON of the state this transaction was evaluated against
-- ARGV[1] transactionId      ARGV[2] event time (ms)
-- ARGV[3] this transaction as the next "last" (JSON with eventMs)
-- ARGV[4] evaluation time (ms)
-- ARGV[5] lookback (ms): recent event times returned are in (event - lookback, event]
-- ARGV[6] retention (ms): entries older than the newest minus this are trimmed
-- ARGV[7] most entries kept (and returned)
-- ARGV[8] snapshot TTL (s)   ARGV[9] user state TTL (s)
--
-- Returns {replayed (0|1), snapshot JSON}. Idempotent per transactionId: a replay
-- returns the stored snapshot and changes nothing, so it raises the same alerts.
-- All keys carry the user's hash tag: one cluster slot.

local snapshot = redis.call('GET', KEYS[3])
if snapshot then
  return {1, snapshot}
end

local event_ms = tonumber(ARGV[2])
local max_entries = tonumber(ARGV[7])
local user_ttl = ARGV[9]

redis.call('ZADD', KEYS[1], event_ms, ARGV[1])
local recent = redis.call(
  'ZREVRANGEBYSCORE', KEYS[1], ARGV[2], '(' .. string.format('%d', event_ms - tonumber(ARGV[5])),
  'WITHSCORES', 'LIMIT', 0, max_entries)
local times = {}
for i = 2, #recent, 2 do
  times[#times + 1] = string.format('%d', tonumber(recent[i]))
end

-- The previous transaction; a value that is not ours to read counts as none.
local previous = redis.call('GET', KEYS[2])
local previous_ms = nil
if previous then
  local ok, decoded = pcall(cjson.decode, previous)
  if ok and type(decoded) == 'table' and tonumber(decoded['eventMs']) then
    previous_ms = tonumber(decoded['eventMs'])
  else
    previous = false
  end
end

snapshot = '{"recent":[' .. table.concat(times, ',') .. '],"previous":' ..
  (previous or 'null') .. ',"evaluatedAtMs":' .. ARGV[4] .. '}'
redis.call('SET', KEYS[3], snapshot, 'EX', ARGV[8])

-- The latest transaction by event time stays "last": a late event does not replace it.
if previous_ms and previous_ms > event_ms then
  redis.call('EXPIRE', KEYS[2], user_ttl)
else
  redis.call('SET', KEYS[2], ARGV[3], 'EX', user_ttl)
end

local newest = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local horizon = tonumber(newest[2]) - tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', horizon))
local surplus = redis.call('ZCARD', KEYS[1]) - max_entries
if surplus > 0 then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, surplus - 1)
end
redis.call('EXPIRE', KEYS[1], user_ttl)

return {0, snapshot}
