-- async.jobs: a distributed job queue on Redis Streams with consumer
-- groups (docs/jobs.md is the guide). Producers push jobs; workers in any
-- number of processes, on any number of machines, read them with
-- XREADGROUP, run each as a task, and acknowledge it when done.
--
-- Keys, under "<prefix>:<name>" (P):
--   P:s:<priority>   one stream per priority level, consumer group `group`
--   P:delayed        ZSET of delayed jobs and retries, scored by due time (ms)
--   P:dead           the dead-letter stream (jobs out of attempts)
--   P:r:<id>         a finished job's outcome, kept result_ttl seconds
--   P:n:<id>         a list that wakes whoever awaits the job
--   P:d:<key>        a dedup key, holding the job id
--   P:seq            the job id counter
-- Every change of state is one server-side script, so a worker that dies
-- between two steps never leaves a job half-moved: a job is in a stream
-- (pending or being run), in P:delayed, or finished.
local async = require "async"
local class = require "async.class"
local scripts = require "async.internal.jobs_scripts"

local type, error, pcall, tostring, tonumber, format = type, error, pcall, tostring, tonumber, string.format
local setmetatable, unpack = setmetatable, table.unpack

local M = {}

local JobError = {__name = "lasync.JobError"}
JobError.__tostring = function(e) return "JobError: " .. tostring(e.message) end
M.JobError = JobError

local function default_codec()
  local json = require "async.json"
  return {encode = json.encode, decode = json.decode}
end

------------------------------------------------------------------ queue

local Queue = {}
local queue_mt = {__index = Queue, __name = "lasync.JobQueue"}

local function check_opt(o, k, kind, min)
  local v = o[k]
  if v == nil then return end
  if type(v) ~= kind or (min and v < min) then
    error(format("jobs: option %s must be a %s%s (got %s)", k, kind,
                 min and (" >= " .. min) or "", tostring(v)), 4)
  end
end

-- async.jobs.queue{redis = client, name = "emails", ...}: see docs/API.md.
function M.queue(o)
  if type(o) ~= "table" then
    error(format("bad argument #1 to 'queue' (table expected, got %s)", type(o)), 2)
  end
  if type(o.redis) ~= "table" or type(o.redis.call) ~= "function" then
    error("jobs.queue: option redis must be an async.redis client", 2)
  end
  if type(o.name) ~= "string" or o.name == "" or o.name:find("[%s{}]") then
    error("jobs.queue: option name must be a non-empty string without spaces or braces", 2)
  end
  for _, k in ipairs{"max_attempts", "visibility", "result_ttl", "retry_delay", "retry_max_delay"} do
    check_opt(o, k, "number", 0)
  end
  local prios = o.priorities or {"high", "default", "low"}
  -- The hash tag {name}: on Redis Cluster all the queue's keys share a node.
  local p = (o.prefix or "lasync:jobs") .. ":{" .. o.name .. "}"
  local q = setmetatable({redis = o.redis, name = o.name, prefix = p, group = o.group or "workers",
    priorities = prios, max_attempts = o.max_attempts or 3, visibility = o.visibility or 30,
    result_ttl = o.result_ttl or 3600, retry_delay = o.retry_delay or 1,
    retry_max_delay = o.retry_max_delay or 300, codec = o.codec or default_codec(),
    streams = {}, prio_index = {}}, queue_mt)
  for i, name in ipairs(prios) do
    q.streams[i] = p .. ":s:" .. name
    q.prio_index[name] = i
  end
  q.default_priority = o.default_priority or (q.prio_index.default and "default") or prios[1]
  return q
end

-- Runs one of the scripts (EVALSHA, loading it on NOSCRIPT).
local function run_script(q, name, keys, ...)
  return scripts.run(q.redis, name, keys, ...)
end

local Job = {}
local job_mt = {__index = Job, __name = "lasync.Job"}

-- q:push(kind, args [, {delay=, priority=, dedup=, dedup_ttl=, max_attempts=}])
-- Returns a Job; job.new is false when dedup found the same job queued.
function Queue:push(kind, args, o)
  if type(kind) ~= "string" or kind == "" then
    error(format("bad argument #1 to 'push' (job kind expected, got %s)", type(kind)), 2)
  end
  if o ~= nil and type(o) ~= "table" then
    error(format("bad argument #3 to 'push' (table expected, got %s)", type(o)), 2)
  end
  o = o or {}
  check_opt(o, "delay", "number", 0)
  check_opt(o, "max_attempts", "number", 1)
  check_opt(o, "dedup_ttl", "number", 1)
  local prio = o.priority or self.default_priority
  local pi = self.prio_index[prio]
  if not pi then error(format("jobs.push: unknown priority %q", tostring(prio)), 2) end
  if o.dedup ~= nil and type(o.dedup) ~= "string" then
    error("jobs.push: option dedup must be a string", 2)
  end
  local enc = self.codec.encode(args == nil and {} or args)
  local p = self.prefix
  local r = run_script(self, "push", {p .. ":seq", self.streams[pi], p .. ":delayed",
      o.dedup and (p .. ":d:" .. o.dedup) or (p .. ":d:")},
    kind, enc, math.floor((o.delay or 0) * 1000), o.dedup and 1 or 0,
    math.floor(o.dedup_ttl or self.result_ttl), o.max_attempts or self.max_attempts, prio)
  return setmetatable({id = r[1], queue = self, new = r[2] == 1}, job_mt)
end

local function decode_outcome(q, id, s)
  local ok, out = pcall(q.codec.decode, s)
  if not ok or type(out) ~= "table" then
    error(format("jobs: the outcome of job %s cannot be decoded", id), 0)
  end
  if out.ok then return true, out.value end
  return false, setmetatable({kind = "JobError", message = out.error, job = id,
                              attempts = out.attempts, dead = out.dead}, JobError)
end

-- job:await([timeout]): the handler's result once the job has finished;
-- raises JobError when it went to the dead-letter stream, async.Timeout
-- after timeout seconds (default: wait as long as it takes).
local function await_outcome(q, id)
  local r, n = q.prefix .. ":r:" .. id, q.prefix .. ":n:" .. id
  while true do
    local s = q.redis:get(r)
    if s then
      local ok, v = decode_outcome(q, id, s)
      if ok then return v end
      error(v, 0)
    end
    -- Woken by the worker's RPUSH; the token goes back for other awaiters.
    if q.redis:call("BLPOP", n, 0) then q.redis:call("LPUSH", n, "1") end
  end
end

function Job:await(timeout)
  if timeout == nil then return await_outcome(self.queue, self.id) end
  if type(timeout) ~= "number" then
    error(format("bad argument #1 to 'await' (number expected, got %s)", type(timeout)), 2)
  end
  return async.timeout(timeout, await_outcome, self.queue, self.id)
end

-- job:status(): "finished", "failed" (dead-lettered) or "unknown" (queued,
-- running, or its outcome expired).
function Job:status()
  local s = self.queue.redis:get(self.queue.prefix .. ":r:" .. self.id)
  if not s then return "unknown" end
  return (decode_outcome(self.queue, self.id, s)) and "finished" or "failed"
end

-- q:counts(): how many jobs wait in the streams (not yet read, or read
-- and not yet acknowledged), are delayed, and are dead.
function Queue:counts()
  local red, p = self.redis, self.prefix
  local cmds = {}
  for i, s in ipairs(self.streams) do cmds[i] = {"XLEN", s} end
  cmds[#cmds + 1] = {"ZCARD", p .. ":delayed"}
  cmds[#cmds + 1] = {"XLEN", p .. ":dead"}
  local res = red:pipeline(function(pl) for _, c in ipairs(cmds) do pl:call(unpack(c)) end end)
  local queued = 0
  for i = 1, #self.streams do queued = queued + res[i] end
  return {queued = queued, delayed = res[#self.streams + 1], dead = res[#self.streams + 2]}
end

-- q:dead_letters([count]): the dead jobs, oldest first, as {id, kind,
-- args (decoded), error, attempts}.
function Queue:dead_letters(count)
  local res = self.redis:call("XRANGE", self.prefix .. ":dead", "-", "+", "COUNT", count or 100)
  local out = {}
  for i, e in ipairs(res) do
    local f = {}
    for k = 1, #e[2], 2 do f[e[2][k]] = e[2][k + 1] end
    out[i] = {id = f.id, kind = f.kind, args = self.codec.decode(f.args), error = f.error,
              attempts = tonumber(f.attempts), entry = e[1]}
  end
  return out
end

-- Removes every key of the queue (tests, resets). Workers must be stopped.
function Queue:destroy()
  local red = self.redis
  -- on a cluster, SCAN walks one node: the one of the queue's {name} slot
  if class.typename(red) == "lasync.RedisCluster" then red = red:node(self.prefix) end
  local cursor = "0"
  repeat
    local pattern = self.prefix:gsub("[%*%?%[%]\\]", "\\%0") .. ":*"   -- glob-escaped
    local r = red:call("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
    cursor = r[1]
    if #r[2] > 0 then red:call("UNLINK", unpack(r[2])) end
  until cursor == "0"
end

function queue_mt.__tostring(q) return format("JobQueue<%s>", q.name) end

class.check_self(Queue, queue_mt)        -- a wrong self raises at once
class.check_self(Job, job_mt)
M.Queue, M.Job = Queue, Job
M.worker = function(o) return require("async.internal.jobs_worker").new(o) end
return M
