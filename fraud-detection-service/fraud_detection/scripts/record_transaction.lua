-- Record one transaction in its user's state; return the state it is evaluated against.
--
-- KEYS[1] window    sorted set: member = transactionId, score = event time (ms)
-- KEYS[2] last      JSON of the user's latest transaction by event time
-- KEYS[3] snapshot  JSON of the state this transaction was evaluated against
-- ARGV[1] transactionId      ARGV[2] event time (ms)      ARGV[3] place name
-- ARGV[4] evaluation time (ms)
-- ARGV[5] lookback (ms): event times returned are in (event - lookback, event + lookback)
-- ARGV[6] retention (ms): entries older than the newest minus this are trimmed
-- ARGV[7] most entries kept in the window, and most returned on each side of the event
-- ARGV[8] snapshot TTL (s)   ARGV[9] user state TTL (s)
-- ARGV[10], ARGV[11], ... the place's candidate coordinates as latitude, longitude pairs
--   (JSON numbers; none when the place is unresolved)
--
-- Returns {replayed (0|1), snapshot JSON}: {"recent": event times at or before this one,
-- newest first, this one included; "later": event times after it, oldest first;
-- "coordinates": [lat, lon] of the chosen candidate or null; "previous": the user's
-- "last" before this one or null; "evaluatedAtMs"}. Of several candidates the one
-- nearest the previous place is chosen (else the first), stored in "last" and in the
-- snapshot. Idempotent per transactionId: a replay returns the stored snapshot and
-- changes nothing, so it sees the same window and place and raises the same alerts.
-- All keys carry the user's hash tag: one cluster slot.

local snapshot = redis.call('GET', KEYS[3])
if snapshot then
  return {1, snapshot}
end

local event_ms = tonumber(ARGV[2])
local event_text = string.format('%d', event_ms)
local lookback = tonumber(ARGV[5])
local max_entries = tonumber(ARGV[7])
local user_ttl = ARGV[9]

local function scores(reply)
  local times = {}
  for i = 2, #reply, 2 do
    times[#times + 1] = string.format('%d', tonumber(reply[i]))
  end
  return table.concat(times, ',')
end

redis.call('ZADD', KEYS[1], event_ms, ARGV[1])
local recent = redis.call(
  'ZREVRANGEBYSCORE', KEYS[1], event_text, '(' .. string.format('%d', event_ms - lookback),
  'WITHSCORES', 'LIMIT', 0, max_entries)
local later = redis.call(
  'ZRANGEBYSCORE', KEYS[1], '(' .. event_text, '(' .. string.format('%d', event_ms + lookback),
  'WITHSCORES', 'LIMIT', 0, max_entries)

-- The previous transaction; a value that is not ours to read counts as none.
local previous = redis.call('GET', KEYS[2])
local previous_ms = nil
local previous_lat, previous_lon = nil, nil
if previous then
  local ok, decoded = pcall(cjson.decode, previous)
  if ok and type(decoded) == 'table' and tonumber(decoded['eventMs']) then
    previous_ms = tonumber(decoded['eventMs'])
    if type(decoded['latitude']) == 'number' and type(decoded['longitude']) == 'number' then
      previous_lat, previous_lon = decoded['latitude'], decoded['longitude']
    end
  else
    previous = false
  end
end

-- A point on the unit sphere; the chord between two such points grows with the
-- great-circle distance, so the nearest by chord is the nearest on Earth.
local function unit_vector(lat, lon)
  local phi, lambda = math.rad(lat), math.rad(lon)
  return math.cos(phi) * math.cos(lambda), math.cos(phi) * math.sin(lambda), math.sin(phi)
end

local chosen = nil
if #ARGV >= 11 then
  chosen = 10
  if previous_lat and #ARGV >= 13 then
    local px, py, pz = unit_vector(previous_lat, previous_lon)
    local best = nil
    for i = 10, #ARGV - 1, 2 do
      local x, y, z = unit_vector(tonumber(ARGV[i]), tonumber(ARGV[i + 1]))
      local chord = (x - px) ^ 2 + (y - py) ^ 2 + (z - pz) ^ 2
      if best == nil or chord < best then
        best, chosen = chord, i
      end
    end
  end
end
local lat_text, lon_text = 'null', 'null'
if chosen then
  lat_text, lon_text = ARGV[chosen], ARGV[chosen + 1]
end

snapshot = '{"recent":[' .. scores(recent) .. '],"later":[' .. scores(later) ..
  '],"coordinates":' .. (chosen and ('[' .. lat_text .. ',' .. lon_text .. ']') or 'null') ..
  ',"previous":' .. (previous or 'null') .. ',"evaluatedAtMs":' .. ARGV[4] .. '}'
redis.call('SET', KEYS[3], snapshot, 'EX', ARGV[8])

-- The latest transaction by event time stays "last": a late event does not replace it.
if previous_ms and previous_ms > event_ms then
  redis.call('EXPIRE', KEYS[2], user_ttl)
else
  local last = '{"transactionId":' .. cjson.encode(ARGV[1]) .. ',"location":' ..
    cjson.encode(ARGV[3]) .. ',"latitude":' .. lat_text .. ',"longitude":' .. lon_text ..
    ',"eventMs":' .. event_text .. '}'
  redis.call('SET', KEYS[2], last, 'EX', user_ttl)
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
