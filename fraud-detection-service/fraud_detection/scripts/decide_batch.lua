-- A batch's decisions (fraud_detection.handler), each stored once: per decision the
-- same three commands the handler would pipeline, in one call; on one Redis also the
-- rule counters of the decisions it stored (fraud_detection.rules_api.RuleStats).
--
-- KEYS[1]  the first decision key (routes the call on a cluster; the entries name
--          their keys, all in the slot of KEYS[1])
-- KEYS[2]  optional: the rule-stats hash. Given (one Redis), the decisions this call
--          stores are counted in the same atomic step: counted exactly once, whatever
--          fails later. Absent on a cluster (the hash is in another slot): the
--          handler counts what this call reports as stored.
-- ARGV[1]  decision TTL (s)
-- ARGV[2]  ready-list TTL (s)
-- ARGV[3]  JSON [[decision key, ready key, decision JSON, [hit field, ...]], ...] in
--          batch order (the hit fields: one per rule hit, active and shadow)
-- ARGV[4]  JSON [evaluated field, ...]: one per rule evaluated (used with KEYS[2])
-- Per entry: SET decision NX GET EX ttl (the first decision stays), RPUSH ready 1
-- (wakes a `Prefer: wait` request), EXPIRE ready.
-- Returns  per entry, in order: 0 when this call stored it, else the decision stored
--          before (a redelivery, or the same transaction earlier in the batch).
local ttl, ready_ttl = ARGV[1], ARGV[2]
local entries = cjson.decode(ARGV[3])
local out = {}
local stored = 0
local hits = {}
for i, entry in ipairs(entries) do
  local before = redis.call('SET', entry[1], entry[3], 'NX', 'GET', 'EX', ttl)
  redis.call('RPUSH', entry[2], 1)
  redis.call('EXPIRE', entry[2], ready_ttl)
  if before then
    out[i] = before
  else
    out[i] = 0
    stored = stored + 1
    for _, field in ipairs(entry[4] or {}) do
      hits[field] = (hits[field] or 0) + 1
    end
  end
end
if KEYS[2] and stored > 0 then
  for _, field in ipairs(cjson.decode(ARGV[4])) do
    redis.call('HINCRBY', KEYS[2], field, stored)
  end
  for field, count in pairs(hits) do
    redis.call('HINCRBY', KEYS[2], field, count)
  end
end
return out
