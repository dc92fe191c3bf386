-- Record one transaction in its user's state; return the state it is evaluated against.
--
-- KEYS[1] window    sorted set: member = "<transactionId>|<micro-USD>" (or, when the amount
--                   is unknown and in members written before amounts were, the bare
--                   transactionId), score = event time (ms)
-- KEYS[2] last      JSON of the user's latest transaction by event time
-- KEYS[3] snapshot  JSON of the state this transaction was evaluated against
-- KEYS[4] places    sorted set: member = place key, score = latest event time (ms) used
-- ARGV[1] transactionId      ARGV[2] event time (ms)      ARGV[3] place name
-- ARGV[4] evaluation time (ms)
-- ARGV[5] lookback (ms): event times returned are in (event - lookback, event + lookback)
-- ARGV[6] retention (ms): entries older than the newest minus this are trimmed
-- ARGV[7] most entries kept in the window, and most returned on each side of the event
-- ARGV[8] snapshot TTL (s)   ARGV[9] user state TTL (s)
-- ARGV[10] the amount in micro-USD as decimal digits, or '' when unknown
-- ARGV[11] places retention (ms): places last used before the newest minus this are
--   trimmed; 0 keeps no places (KEYS[4] is neither read nor written)
-- ARGV[12] most places kept     ARGV[13] the place key of the name (used when unresolved)
-- ARGV[14], ARGV[15], ARGV[16], ... the place's candidates as latitude, longitude, place
--   key triples (JSON numbers, then text; none when the place is unresolved)
--
-- Returns {replayed (0|1), snapshot JSON}: {"recent": event times at or before this one,
-- newest first, this one included; "recentMicros": their amounts (digits as JSON strings,
-- null when unknown); "later": event times after it, oldest first; "laterMicros";
-- "coordinates": [lat, lon] of the chosen candidate or null; "place": {"key",
-- "lastUsedMs": when this place was last used before (null if never), "history": whether
-- the user had any place before} or null when no places are kept; "previous": the user's
-- "last" before this one or null; "evaluatedAtMs"}. Of several candidates the one
-- nearest the previous place is chosen (else the first), stored in "last" and in the
-- snapshot. Idempotent per transactionId: a replay returns the stored snapshot and
-- changes nothing, so it sees the same window and place and raises the same alerts; once
-- the snapshot has expired, a rerun finds its own window entry and adds no second one.
-- Amounts are never numbers here (a double is not exact past 2**53): only text.
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
local places_retention = tonumber(ARGV[11])
local id_prefix = ARGV[1] .. '|'

-- Whether a window member is this transaction's (in either form).
local function is_ours(member)
  return member == ARGV[1] or (member:sub(1, #id_prefix) == id_prefix and
    member:sub(#id_prefix + 1):match('^%d+$') ~= nil)
end

-- Event times and amounts of a WITHSCORES reply, as JSON array bodies.
local function entries(reply)
  local times, micros = {}, {}
  for i = 1, #reply, 2 do
    times[#times + 1] = string.format('%d', tonumber(reply[i + 1]))
    local digits = reply[i]:match('|(%d+)$')
    micros[#micros + 1] = digits and ('"' .. digits .. '"') or 'null'
  end
  return table.concat(times, ','), table.concat(micros, ',')
end

local recorded = false
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], event_text, event_text)) do
  if is_ours(member) then
    recorded = true
    break
  end
end
if not recorded then
  local member = ARGV[1]
  if ARGV[10] ~= '' then
    member = id_prefix .. ARGV[10]
  end
  redis.call('ZADD', KEYS[1], event_ms, member)
end
local recent_times, recent_micros = entries(redis.call(
  'ZREVRANGEBYSCORE', KEYS[1], event_text, '(' .. string.format('%d', event_ms - lookback),
  'WITHSCORES', 'LIMIT', 0, max_entries))
local later_times, later_micros = entries(redis.call(
  'ZRANGEBYSCORE', KEYS[1], '(' .. event_text, '(' .. string.format('%d', event_ms + lookback),
  'WITHSCORES', 'LIMIT', 0, max_entries))

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
if #ARGV >= 16 then
  chosen = 14
  if previous_lat and #ARGV >= 19 then
    local px, py, pz = unit_vector(previous_lat, previous_lon)
    local best = nil
    for i = 14, #ARGV - 2, 3 do
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

-- The user's places: when this one was last used, then this use.
local place = 'null'
if places_retention > 0 then
  local place_key = chosen and ARGV[chosen + 2] or ARGV[13]
  local history = redis.call('ZCARD', KEYS[4]) > 0
  local used = redis.call('ZSCORE', KEYS[4], place_key)
  place = '{"key":' .. cjson.encode(place_key) .. ',"lastUsedMs":' ..
    (used and string.format('%d', tonumber(used)) or 'null') .. ',"history":' ..
    (history and 'true' or 'false') .. '}'
  if not used or tonumber(used) < event_ms then  -- a late use does not move it back
    redis.call('ZADD', KEYS[4], event_ms, place_key)
  end
  local latest = redis.call('ZREVRANGE', KEYS[4], 0, 0, 'WITHSCORES')
  local horizon = tonumber(latest[2]) - places_retention
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. string.format('%d', horizon))
  local extra = redis.call('ZCARD', KEYS[4]) - tonumber(ARGV[12])
  if extra > 0 then
    redis.call('ZREMRANGEBYRANK', KEYS[4], 0, extra - 1)
  end
  redis.call('EXPIRE', KEYS[4], user_ttl)
end

snapshot = '{"recent":[' .. recent_times .. '],"recentMicros":[' .. recent_micros ..
  '],"later":[' .. later_times .. '],"laterMicros":[' .. later_micros ..
  '],"coordinates":' .. (chosen and ('[' .. lat_text .. ',' .. lon_text .. ']') or 'null') ..
  ',"place":' .. place .. ',"previous":' .. (previous or 'null') ..
  ',"evaluatedAtMs":' .. ARGV[4] .. '}'
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
