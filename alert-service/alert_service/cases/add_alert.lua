-- Put one alert into its user's open case, opening one when there is none.
--
-- KEYS[1] the user's open-case pointer   KEYS[2] the user's members hash (alertId -> caseId)
-- KEYS[3] candidate case hash   KEYS[4] its alert copies   KEYS[5] its history
-- ARGV[1] alertId  ARGV[2] candidate caseId (the open one the caller read, or a fresh id)
-- ARGV[3] alert JSON  ARGV[4] risk score (-1: none)  ARGV[5] now (ISO 8601)  ARGV[6] now (ms)
-- ARGV[7] userId  ARGV[8] alert copies kept per case  ARGV[9] ruleId
--
-- Returns {0, caseId}: the alert is already in a case (a redelivery: nothing written);
-- {1, caseId}: joined the open case; {2, caseId}: opened the case with it;
-- {-1, openId}: another case is open (the caller retries with that id);
-- {-2, ''}: the candidate is a case that is no longer open (the caller retries with a fresh id).
--
-- Every key carries the user's hash tag: one slot, legal on a Redis Cluster.

local member = redis.call('HGET', KEYS[2], ARGV[1])
if member then
  return {0, member}
end

local outcome = 1
local open = redis.call('GET', KEYS[1])
if open then
  if open ~= ARGV[2] then
    return {-1, open}
  end
else
  if redis.call('EXISTS', KEYS[3]) == 1 then
    return {-2, ''}
  end
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('HSET', KEYS[3], 'caseId', ARGV[2], 'userId', ARGV[7], 'status', 'open',
    'openedAt', ARGV[5], 'updatedAt', ARGV[5], 'updatedAtMs', ARGV[6],
    'alertCount', 0, 'maxRiskScore', -1)
  redis.call('RPUSH', KEYS[5], cjson.encode({at = ARGV[5], actor = 'system', action = 'opened',
    details = {alertId = ARGV[1], ruleId = ARGV[9]}}))
  outcome = 2
end

redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local count = redis.call('HINCRBY', KEYS[3], 'alertCount', 1)
local risk = tonumber(ARGV[4])
if risk > tonumber(redis.call('HGET', KEYS[3], 'maxRiskScore')) then
  redis.call('HSET', KEYS[3], 'maxRiskScore', risk)
end
if tonumber(ARGV[6]) > tonumber(redis.call('HGET', KEYS[3], 'updatedAtMs')) then
  redis.call('HSET', KEYS[3], 'updatedAt', ARGV[5], 'updatedAtMs', ARGV[6])
end
if count <= tonumber(ARGV[8]) then
  redis.call('RPUSH', KEYS[4], ARGV[3])
  if outcome == 1 then
    redis.call('RPUSH', KEYS[5], cjson.encode({at = ARGV[5], actor = 'system',
      action = 'alert_added', details = {alertId = ARGV[1], ruleId = ARGV[9]}}))
  end
end
return {outcome, ARGV[2]}
