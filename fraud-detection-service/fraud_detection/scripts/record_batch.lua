-- Record a batch of transactions in their users' state, in order; return the state each
-- one is evaluated against. One call for the whole batch (on a Redis Cluster: one call
-- per hash slot, all of whose entries' keys share that slot; KEYS[1] only routes it).
--
-- ARGV[1] evaluation time (ms)
-- ARGV[2] lookback (ms): event times returned are in (event - lookback, event + lookback)
-- ARGV[3] retention (ms): entries older than the newest minus this are trimmed
-- ARGV[4] most entries kept in the window, and most returned on each side of the event
-- ARGV[5] snapshot TTL (s); 0 keeps no snapshots (neither read nor written)
-- ARGV[6] user state TTL (s)
-- ARGV[7] places retention (ms): places last used before the newest minus this are
--   trimmed; 0 keeps no places (the places key is neither read nor written)
-- ARGV[8] most places kept
-- ARGV[9] JSON array of entries, each an array of strings:
--   [1] window    sorted set: member = "<transactionId>|<micro-USD>" (or, when the amount
--                 is unknown and in members written before amounts were, the bare
--                 transactionId), score = event time (ms)
--   [2] last      JSON of the user's latest transaction by event time
--   [3] snapshot  JSON of the state this transaction was evaluated against ('' when
--                 ARGV[5] is 0: no snapshots)
--   [4] places    sorted set: member = place key, score = latest event time (ms) used
--                 ('' when ARGV[7] is 0: no places)
--   [5] transactionId   [6] event time (ms, digits)   [7] place name
--   [8] the amount in micro-USD as decimal digits, or '' when unknown
--   [9] the place key of the name (used when unresolved)
--   [10], [11], [12], ... the place's candidates as latitude, longitude, place key
--   triples (latitude and longitude as JSON number text; none when unresolved)
--
-- Returns one JSON array, two elements per entry: replayed (0|1), then the snapshot:
-- {"recent": event times at or before this one, newest first, this one included;
-- "recentMicros": their amounts (digits as JSON strings, null when unknown); "later":
-- event times after it, oldest first; "laterMicros"; "coordinates": [lat, lon] of the
-- chosen candidate or null; "place": {"key", "lastUsedMs": when this place was last
-- used before (null if never), "history": whether the user had any place before} or null
-- when no places are kept; "previous": the user's "last" before this one or null;
-- "evaluatedAtMs"}. Of several candidates the one nearest the previous place is chosen
-- (else the first), stored in "last" and in the snapshot. Idempotent per transactionId:
-- a replay returns the stored snapshot and changes nothing, so it sees the same window
-- and place and raises the same alerts; once the snapshot has expired, a rerun finds its
-- own window entry and adds no second one (as does every rerun when no snapshots are
-- kept). Entries run in order, so a transaction twice in one batch is a replay the
-- second time. Amounts are never numbers here (a double is
-- not exact past 2**53): only text.

local evaluated_at = ARGV[1]
local lookback = tonumber(ARGV[2])
local retention = tonumber(ARGV[3])
local max_entries = tonumber(ARGV[4])
local snapshot_ttl = ARGV[5]
local keep_snapshots = tonumber(snapshot_ttl) > 0
local user_ttl = ARGV[6]
local places_retention = tonumber(ARGV[7])
local max_places = tonumber(ARGV[8])

-- Numbers go to redis.call as text (Redis formats a Lua number argument with printf's
-- %.17g, which was a tenth of this script's cost), and scores are read as the text
-- Redis sends: an integral score is its digits already.

-- A window member and its score as the snapshot lists them: the event time's digits and
-- the amount as a JSON string of digits, or null when unknown.
local function entry_texts(member, score)
  if not score:find('^%-?%d+$') then  -- not written by this script: normalise it
    score = string.format('%d', tonumber(score))
  end
  local digits = member:match('|(%d+)$')
  return score, digits and ('"' .. digits .. '"') or 'null'
end

-- In an ascending WITHSCORES reply, the index of the first member after the event (past
-- the end when there is none).
local function split_of(reply, event_ms)
  for i = 1, #reply, 2 do
    if tonumber(reply[i + 1]) > event_ms then
      return i
    end
  end
  return #reply + 1
end

-- The window around an event, from one ascending WITHSCORES reply over (event - lookback,
-- event + lookback) and its `split_of`: event times and amounts as JSON array bodies,
-- those at or before the event newest first, those after it oldest first, at most `most`
-- on each side (as ZREVRANGEBYSCORE and ZRANGEBYSCORE with LIMIT would give them; one
-- range instead of two, and the window never holds more than `most` + 1 when this runs,
-- so the reply is no larger than the two).
local function around(reply, split, most)
  local recent_times, recent_micros, later_times, later_micros = {}, {}, {}, {}
  local n = 0
  for i = split - 2, math.max(1, split - 2 * most), -2 do
    n = n + 1
    recent_times[n], recent_micros[n] = entry_texts(reply[i], reply[i + 1])
  end
  n = 0
  for i = split, math.min(#reply - 1, split + 2 * most - 2), 2 do
    n = n + 1
    later_times[n], later_micros[n] = entry_texts(reply[i], reply[i + 1])
  end
  return table.concat(recent_times, ','), table.concat(recent_micros, ','),
    table.concat(later_times, ','), table.concat(later_micros, ',')
end

-- What this call already knows, by key: a user's later entries in the batch read their
-- "last" here instead of GET and decode (only this script writes it, and nothing runs
-- beside a script), "last" is written once, when the batch is done, with its final value,
-- a key's TTL is set once (the same `user_ttl`, from the same call: a script sees one
-- clock), and a sorted set's size, once read, is kept up to date here, so that the
-- trim by rank runs only when there is something to trim. A batch holding many
-- transactions of one user (a burst, a backtest's shard) then costs fewer commands;
-- every reply and every value written stays the same.
local lasts = {}    -- last key -> {text = JSON or false, ms, lat, lon} as read or written
local expired = {}  -- key -> true once its TTL was set by this call (or will be, see below)
local pending = {}  -- last key -> the JSON to SET when the batch is done (its final value)
local sizes = {}    -- sorted-set key -> its size, once this call has read it (ZCARD)

-- A sorted set's known size after adding (`delta` 1 or 0) or removing (-1) a member.
local function counted(key, delta)
  if sizes[key] then
    sizes[key] = sizes[key] + delta
  end
end

local function expire_once(key)
  if not expired[key] then
    redis.call('EXPIRE', key, user_ttl)
    expired[key] = true
  end
end

-- Trim a sorted set scored by event time: members scored below its highest score minus
-- `retention` go, then the lowest-scored ones past `most`; it lives `user_ttl` on.
-- `newest_ms`, when known, is that highest score (saves reading it).
local function trim(key, retention_ms, most, newest_ms)
  if not newest_ms then
    newest_ms = tonumber(redis.call('ZREVRANGE', key, '0', '0', 'WITHSCORES')[2])
  end
  local horizon = newest_ms - retention_ms
  local removed = redis.call('ZREMRANGEBYSCORE', key, '-inf',
    '(' .. string.format('%d', horizon))
  local size = sizes[key]
  if size then
    size = size - removed
  else
    size = redis.call('ZCARD', key)
  end
  if size > most then
    -- Ranks 0 .. -(most + 1): all but the highest `most`.
    redis.call('ZREMRANGEBYRANK', key, '0', string.format('%d', -most - 1))
    size = most
  end
  sizes[key] = size
  expire_once(key)
end

-- Whether a window member is this transaction's (in either form: the bare id, or the id,
-- '|' and digits).
local function is_ours(member, transaction_id)
  if member == transaction_id then
    return true
  end
  local n = #transaction_id
  return member:sub(1, n + 1) == transaction_id .. '|' and member:find('^%d+$', n + 2) ~= nil
end

-- Whether any of `members` (ZRANGEBYSCORE at the event's own score) is this transaction's.
local function recorded_at(members, transaction_id)
  for _, m in ipairs(members) do
    if is_ours(m, transaction_id) then
      return true
    end
  end
  return false
end

-- When the window range `reply` holds another member of this transaction at the event's
-- score besides `member`, just added: takes `member` out of it and says so. The members
-- at the event's score are the last ones before `split`.
local function drop_other_form(reply, split, event_ms, transaction_id, member)
  local own, other = nil, false
  for i = split - 2, 1, -2 do
    if tonumber(reply[i + 1]) ~= event_ms then
      break
    end
    if reply[i] == member then
      own = i
    elseif is_ours(reply[i], transaction_id) then
      other = true
    end
  end
  if other and own then
    table.remove(reply, own)
    table.remove(reply, own)
    return true
  end
  return false
end

-- A point on the unit sphere; the chord between two such points grows with the
-- great-circle distance, so the nearest by chord is the nearest on Earth.
local function unit_vector(lat, lon)
  local phi, lambda = math.rad(lat), math.rad(lon)
  return math.cos(phi) * math.cos(lambda), math.cos(phi) * math.sin(lambda), math.sin(phi)
end

local function record(e)
  local window_key, last_key, snapshot_key, places_key = e[1], e[2], e[3], e[4]
  local transaction_id, location = e[5], e[7]

  local snapshot = keep_snapshots and redis.call('GET', snapshot_key)
  if snapshot then
    return '1', snapshot
  end

  local event_ms = tonumber(e[6])
  local event_text = string.format('%d', event_ms)
  local member = transaction_id
  if e[8] ~= '' then
    member = transaction_id .. '|' .. e[8]
  end

  -- Into the window, once: a rerun finds its member there (ZADD adds nothing), or the
  -- other form of it (the bare id, or other digits), which the range around the event
  -- shows, and then takes back the one it just added. Without a lookback the range is
  -- empty and the event's own score is asked first.
  local reply, split = {}, 1
  if lookback > 0 then
    local added = redis.call('ZADD', window_key, event_text, member)
    counted(window_key, added)
    reply = redis.call('ZRANGEBYSCORE', window_key,
      '(' .. string.format('%d', event_ms - lookback),
      '(' .. string.format('%d', event_ms + lookback), 'WITHSCORES')
    split = split_of(reply, event_ms)
    if added == 1 and drop_other_form(reply, split, event_ms, transaction_id, member) then
      redis.call('ZREM', window_key, member)
      counted(window_key, -1)
      split = split - 2
    end
  elseif not recorded_at(redis.call('ZRANGEBYSCORE', window_key, event_text, event_text),
      transaction_id) then
    counted(window_key, redis.call('ZADD', window_key, event_text, member))
  end
  local recent_times, recent_micros, later_times, later_micros = around(reply, split,
    max_entries)

  -- The previous transaction; a value that is not ours to read counts as none.
  local known = lasts[last_key]
  if not known then
    known = {text = redis.call('GET', last_key)}
    if known.text then
      local ok, decoded = pcall(cjson.decode, known.text)
      if ok and type(decoded) == 'table' and tonumber(decoded['eventMs']) then
        known.ms = tonumber(decoded['eventMs'])
        if type(decoded['latitude']) == 'number' and type(decoded['longitude']) == 'number' then
          known.lat, known.lon = decoded['latitude'], decoded['longitude']
        end
      else
        known.text = false
      end
    end
    lasts[last_key] = known
  end
  local previous, previous_ms = known.text, known.ms
  local previous_lat, previous_lon = known.lat, known.lon

  local chosen = nil
  if #e >= 12 then
    chosen = 10
    if previous_lat and #e >= 15 then
      local px, py, pz = unit_vector(previous_lat, previous_lon)
      local best = nil
      for i = 10, #e - 2, 3 do
        local x, y, z = unit_vector(tonumber(e[i]), tonumber(e[i + 1]))
        local chord = (x - px) ^ 2 + (y - py) ^ 2 + (z - pz) ^ 2
        if best == nil or chord < best then
          best, chosen = chord, i
        end
      end
    end
  end
  local lat_text, lon_text = 'null', 'null'
  if chosen then
    lat_text, lon_text = e[chosen], e[chosen + 1]
  end

  -- The user's places: when this one was last used, then this use.
  local place = 'null'
  if places_retention > 0 then
    local place_key = chosen and e[chosen + 2] or e[9]
    local used = redis.call('ZSCORE', places_key, place_key)
    local history = used ~= false
    if not history then
      sizes[places_key] = sizes[places_key] or redis.call('ZCARD', places_key)
      history = sizes[places_key] > 0
    end
    place = '{"key":' .. cjson.encode(place_key) .. ',"lastUsedMs":' ..
      (used and string.format('%d', tonumber(used)) or 'null') .. ',"history":' ..
      (history and 'true' or 'false') .. '}'
    if not used or tonumber(used) < event_ms then  -- a late use does not move it back
      counted(places_key, redis.call('ZADD', places_key, event_text, place_key))
    end
    trim(places_key, places_retention, max_places)
  end

  snapshot = '{"recent":[' .. recent_times .. '],"recentMicros":[' .. recent_micros ..
    '],"later":[' .. later_times .. '],"laterMicros":[' .. later_micros ..
    '],"coordinates":' .. (chosen and ('[' .. lat_text .. ',' .. lon_text .. ']') or 'null') ..
    ',"place":' .. place .. ',"previous":' .. (previous or 'null') ..
    ',"evaluatedAtMs":' .. evaluated_at .. '}'
  if keep_snapshots then
    redis.call('SET', snapshot_key, snapshot, 'EX', snapshot_ttl)
  end

  -- The latest transaction by event time stays "last": a late event does not replace it.
  if previous_ms and previous_ms > event_ms then
    expire_once(last_key)
  else
    local last = '{"transactionId":' .. cjson.encode(transaction_id) .. ',"location":' ..
      cjson.encode(location) .. ',"latitude":' .. lat_text .. ',"longitude":' .. lon_text ..
      ',"eventMs":' .. event_text .. '}'
    pending[last_key] = last
    expired[last_key] = true  -- the SET below gives it its TTL
    -- as decoding it would read it: the coordinates are JSON numbers (Python's repr of
    -- a finite float) or both null
    lasts[last_key] = {text = last, ms = event_ms, lat = tonumber(lat_text),
      lon = tonumber(lon_text)}
  end

  -- The window's newest event is the user's newest, which "last" holds: every entry
  -- goes into both, "last" only ever moves forward, and both live `user_ttl` on from
  -- the same call. Without a readable "last" the window is asked.
  trim(window_key, retention, max_entries, previous_ms and math.max(previous_ms, event_ms))

  return '0', snapshot
end

local out = {}
for _, e in ipairs(cjson.decode(ARGV[9])) do
  local replayed, snapshot = record(e)
  out[#out + 1] = replayed
  out[#out + 1] = snapshot
end
for key, last in pairs(pending) do
  redis.call('SET', key, last, 'EX', user_ttl)
end
return '[' .. table.concat(out, ',') .. ']'
