-- One task of the Tasks extension in the store, changed by one replica's event, atomically.
-- KEYS[1]: the task. ARGV[1]: the event, ARGV[2]: when (unix ms), then the event's own values.
-- Returns -1 for a task the store does not know (yet).
local k, kind, now = KEYS[1], ARGV[1], tonumber(ARGV[2])
if kind == 'created' then
  -- owner, route, tool, client, ttl_ms, poll_ms
  redis.call('HSET', k, 'created', now, 'owner', ARGV[3], 'route', ARGV[4], 'tool', ARGV[5],
    'client', ARGV[6], 'polls', 0, 'poll_ms', ARGV[8])
  redis.call('PEXPIRE', k, tonumber(ARGV[7]) + 60000)
  return 0
end
if redis.call('EXISTS', k) == 0 then
  return -1
end
if kind == 'access' then
  -- principal, method: a poll counts, one sooner than 90 % of the interval is fast; another
  -- principal than the owner is reported once.
  local fast, foreign = 0, 0
  if ARGV[4] == 'tasks/get' then
    redis.call('HINCRBY', k, 'polls', 1)
    local last = tonumber(redis.call('HGET', k, 'last_poll') or '')
    local interval = tonumber(redis.call('HGET', k, 'poll_ms') or '')
    if last and interval and (now - last) < interval * 0.9 then
      fast = 1
    end
    redis.call('HSET', k, 'last_poll', now)
  end
  if redis.call('HGET', k, 'owner') ~= ARGV[3] and redis.call('HSETNX', k, 'foreign:' .. ARGV[3], 1) == 1 then
    foreign = 1
  end
  local t = redis.call('HMGET', k, 'route', 'tool', 'client')
  return {fast, foreign, t[1], t[2], t[3]}
end
if kind == 'status' then
  -- status, poll_ms: time in input_required adds up; a terminal status ends the task here.
  if ARGV[4] ~= '' then
    redis.call('HSET', k, 'poll_ms', ARGV[4])
  end
  local since = tonumber(redis.call('HGET', k, 'input_since') or '')
  if ARGV[3] == 'input_required' then
    if not since then
      redis.call('HSET', k, 'input_since', now)
    end
  elseif since then
    redis.call('HINCRBY', k, 'input_ms', math.max(0, now - since))
    redis.call('HDEL', k, 'input_since')
  end
  if ARGV[3] == 'completed' or ARGV[3] == 'failed' or ARGV[3] == 'cancelled' then
    local t = redis.call('HMGET', k, 'created', 'route', 'tool', 'polls', 'input_ms')
    redis.call('DEL', k)
    return {math.max(0, now - tonumber(t[1])), t[2], t[3], tonumber(t[4]), t[5] or ''}
  end
  return 0
end
if kind == 'orphan' then
  return redis.call('DEL', k)
end
return 0
