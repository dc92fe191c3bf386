-- A batch's decisions (fraud_detection.handler), each stored once: per decision the
-- same three commands the handler would pipeline, in one call.
--
-- KEYS[1]  the first decision key (routes the call on a cluster; the entries name
--          their keys, all in the slot of KEYS[1])
-- ARGV[1]  decision TTL (s)
-- ARGV[2]  ready-list TTL (s)
-- ARGV[3]  JSON [[decision key, ready key, decision JSON], ...] in batch order
-- Per entry: SET decision NX GET EX ttl (the first decision stays), RPUSH ready 1
-- (wakes a `Prefer: wait` request), EXPIRE ready.
-- Returns  per entry, in order: 0 when this call stored it, else the decision stored
--          before (a redelivery, or the same transaction earlier in the batch).
local ttl, ready_ttl = ARGV[1], ARGV[2]
local entries = cjson.decode(ARGV[3])
local out = {}
for i, entry in ipairs(entries) do
  local before = redis.call('SET', entry[1], entry[3], 'NX', 'GET', 'EX', ttl)
  redis.call('RPUSH', entry[2], 1)
  redis.call('EXPIRE', entry[2], ready_ttl)
  out[i] = before or 0
end
return out
