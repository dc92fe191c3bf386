-- Assign or close one case: the status check and the change in one step.
--
-- KEYS[1] the case hash   KEYS[2] its history   KEYS[3] the user's open-case pointer
-- ARGV[1] action: 'assign' | 'close'   ARGV[2] caseId   ARGV[3] actor
-- ARGV[4] now (ISO 8601)   ARGV[5] now (ms)
-- assign: ARGV[6] assignee        close: ARGV[6] verdict   ARGV[7] comment
--
-- Returns {0}: no such case; {409, status}: the case is closed (nothing written);
-- {1, updatedAtMs}: done. Closing frees the pointer, so the user's next alert opens a
-- new case. All keys carry the user's hash tag (one slot).

local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return {0}
end
if status == 'closed' then
  return {409, status}
end

local updated = math.max(tonumber(ARGV[5]), tonumber(redis.call('HGET', KEYS[1], 'updatedAtMs')))
local entry
if ARGV[1] == 'assign' then
  local previous = redis.call('HGET', KEYS[1], 'assignee')
  redis.call('HSET', KEYS[1], 'assignee', ARGV[6])
  entry = {at = ARGV[4], actor = ARGV[3], action = 'assigned',
    details = {assignee = ARGV[6], previous = previous or cjson.null}}
else
  redis.call('HSET', KEYS[1], 'status', 'closed', 'verdict', ARGV[6], 'comment', ARGV[7],
    'closedAt', ARGV[4], 'closedBy', ARGV[3])
  if redis.call('GET', KEYS[3]) == ARGV[2] then
    redis.call('DEL', KEYS[3])
  end
  entry = {at = ARGV[4], actor = ARGV[3], action = 'closed',
    details = {verdict = ARGV[6], comment = ARGV[7]}}
end
redis.call('HSET', KEYS[1], 'updatedAt', ARGV[4], 'updatedAtMs', updated)
redis.call('RPUSH', KEYS[2], cjson.encode(entry))
return {1, tostring(updated)}
