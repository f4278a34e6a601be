-- async.internal.jobs_scripts: the server-side scripts of async.jobs (each change
-- of a job's state is one atomic script) and how they are run: EVALSHA,
-- sending the source (EVAL) when the server does not know it (a restart,
-- or another node of a cluster).
-- Every key of a queue has the hash tag {name}, so on Redis Cluster they
-- all live on one node; the promote script writes to the stream named in
-- the delayed entry, one of those keys.
local M = {}

local NOW = [[
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
]]

M.src = {}

-- KEYS: seq, stream, delayed, dedup. ARGV: kind, args, delay_ms, has_dedup,
-- dedup_ttl, max_attempts. Returns {id, 1}, or {existing id, 0} on dedup.
M.src.push = NOW .. [[
if ARGV[4] == '1' then
  local existing = redis.call('GET', KEYS[4])
  if existing then return {existing, 0} end
end
local id = tostring(redis.call('INCR', KEYS[1]))
if ARGV[4] == '1' then redis.call('SET', KEYS[4], id, 'EX', ARGV[5]) end
local delay = tonumber(ARGV[3])
if delay > 0 then
  redis.call('ZADD', KEYS[3], now + delay, cjson.encode({s = KEYS[2], id = id, kind = ARGV[1],
    args = ARGV[2], attempts = 0, max = tonumber(ARGV[6])}))
else
  redis.call('XADD', KEYS[2], '*', 'id', id, 'kind', ARGV[1], 'args', ARGV[2],
    'attempts', '0', 'max', ARGV[6])
end
return {id, 1}
]]

-- KEYS: delayed. ARGV: limit. Moves the due jobs into their streams.
M.src.promote = NOW .. [[
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, m in ipairs(due) do
  local j = cjson.decode(m)
  redis.call('XADD', j.s, '*', 'id', j.id, 'kind', j.kind, 'args', j.args,
    'attempts', tostring(j.attempts), 'max', tostring(j.max))
  redis.call('ZREM', KEYS[1], m)
end
return #due
]]

-- KEYS: stream, result, notify. ARGV: group, entry, outcome, ttl.
M.src.complete = [[
redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
redis.call('RPUSH', KEYS[3], '1')
redis.call('EXPIRE', KEYS[3], ARGV[4])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
]]

-- KEYS: stream, delayed. ARGV: group, entry, delay_ms, id, kind, args,
-- attempts (failed so far), max. Nothing when another worker acknowledged
-- the entry meanwhile (it was reclaimed from us and finished).
M.src.retry = NOW .. [[
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), cjson.encode({s = KEYS[1], id = ARGV[4],
  kind = ARGV[5], args = ARGV[6], attempts = tonumber(ARGV[7]), max = tonumber(ARGV[8])}))
return 1
]]

-- KEYS: stream, dead, result, notify. ARGV: group, entry, id, kind, args,
-- attempts, error, outcome, ttl.
M.src.dead = [[
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('XADD', KEYS[2], '*', 'id', ARGV[3], 'kind', ARGV[4], 'args', ARGV[5],
  'attempts', ARGV[6], 'error', ARGV[7])
redis.call('SET', KEYS[3], ARGV[8], 'EX', ARGV[9])
redis.call('RPUSH', KEYS[4], '1')
redis.call('EXPIRE', KEYS[4], ARGV[9])
return 1
]]

local shas = {}

local function load(client, name)
  local sha = client:call("SCRIPT", "LOAD", M.src[name])
  shas[name] = sha
  return sha
end

-- run(client, name, keys, args...): the script's reply.
function M.run(client, name, keys, ...)
  local argv = {"EVALSHA", shas[name] or load(client, name), #keys}
  for i = 1, #keys do argv[#argv + 1] = keys[i] end
  local extra = table.pack(...)
  for i = 1, extra.n do argv[#argv + 1] = extra[i] end
  local ok, r = pcall(client.call, client, table.unpack(argv))
  if ok then return r end
  if type(r) == "table" and r.code == "NOSCRIPT" then
    -- EVAL with the source, which caches it where it ran: on Redis Cluster
    -- SCRIPT LOAD reaches one node only, not the one of the queue's slot.
    argv[1], argv[2] = "EVAL", M.src[name]
    return client:call(table.unpack(argv))
  end
  error(r, 0)
end

return M
