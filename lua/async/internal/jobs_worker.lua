-- async.internal.jobs_worker: the worker of async.jobs (async.jobs.worker{...}).
-- Three tasks: the fetch loop (XREADGROUP, highest priority first, as many
-- jobs as free slots), the maintenance loop (heartbeats that keep running
-- jobs from looking abandoned, delayed jobs made due, abandoned jobs of
-- dead workers reclaimed), and one task per running job. Delivery is at
-- least once: a job is acknowledged only after its outcome is stored.
local async = require "async"
local scripts = require "async.internal.jobs_scripts"
local jobs = require "async.jobs"

local type, error, pcall, tostring, tonumber, format = type, error, pcall, tostring, tonumber, string.format
local setmetatable, unpack = setmetatable, table.unpack

local M = {}
local Worker = {}
local worker_mt = {__index = Worker, __name = "lasync.JobWorker"}

local function log(w, fmt, ...)
  if w.quiet then return end
  io.stderr:write(format("jobs worker %s: " .. fmt .. "\n", w.name, ...))
end

local function fields_of(list)
  local f = {}
  for k = 1, #list, 2 do f[list[k]] = list[k + 1] end
  return f
end

local function ms(sec) return math.max(1, math.floor(sec * 1000)) end

-------------------------------------------------------------- one job

local function finished(w, key)
  w.running[key] = nil
  w.nrunning = w.nrunning - 1
  local f = w.freed
  if f then w.freed = nil; f:resolve() end
end

-- Stores the failure: a retry after a backoff, or the dead-letter stream.
local function fail(w, stream, entry, f, attempts, max, msg)
  local q = w.queue
  if attempts >= max then
    local out = q.codec.encode({ok = false, error = msg, attempts = attempts, dead = true})
    scripts.run(q.redis, "dead", {stream, q.prefix .. ":dead", q.prefix .. ":r:" .. f.id,
      q.prefix .. ":n:" .. f.id}, q.group, entry, f.id, f.kind, f.args, attempts, msg, out,
      math.floor(q.result_ttl))
    w.counts.dead = w.counts.dead + 1
  else
    local delay = math.min(q.retry_delay * 2 ^ (attempts - 1), q.retry_max_delay)
    scripts.run(q.redis, "retry", {stream, q.prefix .. ":delayed"}, q.group, entry,
      math.floor(delay * 1000), f.id, f.kind, f.args, attempts, max)
    w.counts.retried = w.counts.retried + 1
  end
end

-- Runs the job of stream entry `entry` (fields f); `before` failed
-- attempts (from the entry, plus deliveries lost with dead workers).
local function run_job(w, stream, entry, f, before)
  local q = w.queue
  local max = tonumber(f.max) or q.max_attempts
  local job = {id = f.id, kind = f.kind, attempt = before + 1, queue = q, worker = w}
  local ok, res
  local handler = w.handlers[f.kind]
  if not handler then
    ok, res = false, format("no handler for job kind %q", tostring(f.kind))
  else
    local okd, args = pcall(q.codec.decode, f.args)
    if okd then ok, res = pcall(handler, args, job)
    else ok, res, before = false, "arguments cannot be decoded: " .. tostring(args), max end
  end
  if not ok and async.is_cancelled(res) and w.stopping then
    return                                -- shutdown: stays pending, reclaimed later
  end
  local okw, err = pcall(function()
    if ok then
      local oke, out = pcall(q.codec.encode, {ok = true, value = res})
      if not oke then
        return fail(w, stream, entry, f, before + 1, max, "result cannot be encoded: " .. tostring(out))
      end
      scripts.run(q.redis, "complete", {stream, q.prefix .. ":r:" .. f.id, q.prefix .. ":n:" .. f.id},
        q.group, entry, out, math.floor(q.result_ttl))
      w.counts.done = w.counts.done + 1
    else
      w.counts.failed = w.counts.failed + 1
      fail(w, stream, entry, f, before + 1, max, tostring(res))
    end
  end)
  if not okw then                         -- Redis unreachable: it stays pending
    log(w, "job %s: cannot store its outcome (%s); it will be reclaimed", tostring(f.id), tostring(err))
  end
end

local function start(w, stream, entry, f, before)
  local key = stream .. " " .. entry
  w.nrunning = w.nrunning + 1
  w.running[key] = {stream = stream, entry = entry}
  w.running[key].task = async.spawn(function()
    local ok, err = pcall(run_job, w, stream, entry, f, before)
    finished(w, key)
    if not ok and not async.is_cancelled(err) then log(w, "%s", tostring(err)) end
  end)
end

------------------------------------------------------------ fetching

local function ensure_groups(w)
  local q = w.queue
  for _, s in ipairs(q.streams) do
    local ok, e = pcall(q.redis.call, q.redis, "XGROUP", "CREATE", s, q.group, "0", "MKSTREAM")
    if not ok and not (type(e) == "table" and e.code == "BUSYGROUP") then error(e, 0) end
  end
end

local function start_entries(w, res)
  local n = 0
  for _, st in ipairs(res or {}) do
    for _, e in ipairs(st[2]) do
      local f = fields_of(e[2])
      start(w, st[1], e[1], f, tonumber(f.attempts) or 0)
      n = n + 1
    end
  end
  return n
end

-- One round: non-blocking reads by priority for the free slots; when all
-- streams are empty, one blocking read on all of them.
local function fetch_once(w)
  local q = w.queue
  while w.nrunning >= w.concurrency do
    w.freed = w.freed or async.future()
    w.freed:await()
  end
  local got = 0
  for _, s in ipairs(q.streams) do
    local free = w.concurrency - w.nrunning
    if free <= 0 then return end
    got = got + start_entries(w, q.redis:call("XREADGROUP", "GROUP", q.group, w.name,
                                             "COUNT", free, "STREAMS", s, ">"))
  end
  if got > 0 then return end
  local args = {"XREADGROUP", "GROUP", q.group, w.name, "COUNT", 1, "BLOCK", ms(w.poll), "STREAMS"}
  for _, s in ipairs(q.streams) do args[#args + 1] = s end
  for _ = 1, #q.streams do args[#args + 1] = ">" end
  start_entries(w, q.redis:call(unpack(args)))
end

local function loop_with_backoff(w, what, step)
  local delay = 0.05
  while not w.stopping do
    local ok, err = pcall(step, w)
    if ok then
      delay = 0.05
    elseif type(err) == "table" and err.code == "NOGROUP" then
      pcall(ensure_groups, w)             -- a server restarted without its data
    else
      if async.is_cancelled(err) then error(err, 0) end
      log(w, "%s: %s (retrying in %g s)", what, tostring(err), delay)
      async.sleep(delay)
      delay = math.min(delay * 2, 2)
    end
  end
end

---------------------------------------------------------- maintenance

-- Keeps the running jobs' entries fresh (XCLAIM to ourselves resets the
-- idle time), so only a dead worker's jobs reach the visibility timeout.
local function heartbeat(w)
  local q, by_stream = w.queue, {}
  for _, r in pairs(w.running) do
    local l = by_stream[r.stream] or {}
    by_stream[r.stream] = l
    l[#l + 1] = r.entry
  end
  for s, ids in pairs(by_stream) do
    local args = {"XCLAIM", s, q.group, w.name, 0}
    for _, id in ipairs(ids) do args[#args + 1] = id end
    args[#args + 1] = "JUSTID"
    q.redis:call(unpack(args))
  end
end

-- Takes over the jobs idle longer than the visibility timeout (their
-- worker died): XPENDING tells how often each was delivered, XCLAIM takes
-- those still idle (another worker may have been first).
local function reclaim(w)
  local q = w.queue
  local vis = ms(q.visibility)
  for _, s in ipairs(q.streams) do
    local free = w.concurrency - w.nrunning
    if free <= 0 then return end
    local pend = q.redis:call("XPENDING", s, q.group, "IDLE", vis, "-", "+", free)
    if #pend > 0 then
      local ids, deliveries = {}, {}
      for i, p in ipairs(pend) do ids[i] = p[1]; deliveries[p[1]] = p[4] end
      local claimed = q.redis:call("XCLAIM", s, q.group, w.name, vis, unpack(ids))  -- ids last
      for _, e in ipairs(claimed) do
        if e and e[2] then
          local f = fields_of(e[2])
          w.counts.reclaimed = w.counts.reclaimed + 1
          start(w, s, e[1], f, (tonumber(f.attempts) or 0) + (deliveries[e[1]] or 1))
        end
      end
    end
  end
end

local function maintain(w)
  local q = w.queue
  heartbeat(w)
  scripts.run(q.redis, "promote", {q.prefix .. ":delayed"}, 100)
  reclaim(w)
  async.sleep(math.min(w.poll, q.visibility / 3))
end

------------------------------------------------------------- the API

-- async.jobs.worker{queue=, handlers=, concurrency=, name=, poll=}
function M.new(o)
  if type(o) ~= "table" then
    error(format("bad argument #1 to 'worker' (table expected, got %s)", type(o)), 3)
  end
  if getmetatable(o.queue) == nil or getmetatable(o.queue).__index ~= jobs.Queue then
    error("jobs.worker: option queue must be an async.jobs queue", 3)
  end
  if type(o.handlers) ~= "table" then error("jobs.worker: option handlers must be a table", 3) end
  for k, h in pairs(o.handlers) do
    if type(k) ~= "string" or type(h) ~= "function" then
      error(format("jobs.worker: handlers[%s] must be a function", tostring(k)), 3)
    end
  end
  local c = o.concurrency or 10
  if math.type(c) ~= "integer" or c < 1 then
    error("jobs.worker: option concurrency must be an integer >= 1", 3)
  end
  local w = setmetatable({queue = o.queue, handlers = o.handlers, concurrency = c,
    name = o.name or format("%s-%d-%d", os.getenv("HOSTNAME") or "worker", os.time(),
                            math.random(1, 1e9)),
    poll = o.poll or 1, quiet = o.quiet, running = {}, nrunning = 0, stopping = false,
    counts = {done = 0, failed = 0, retried = 0, dead = 0, reclaimed = 0},
    stopped = async.future()}, worker_mt)
  ensure_groups(w)
  w.fetcher = async.spawn(loop_with_backoff, w, "fetch", fetch_once)
  w.maintainer = async.spawn(loop_with_backoff, w, "maintenance", maintain)
  return w
end

-- w:stop([deadline]): stops taking jobs, lets the running ones finish for
-- up to deadline seconds (default 10), then cancels the rest (they stay
-- pending and are reclaimed once the visibility timeout passes).
function Worker:stop(deadline)
  if self.stopping then return self.stopped:await() end
  self.stopping = true
  self.fetcher:cancel()
  self.maintainer:cancel()
  pcall(self.fetcher.await, self.fetcher)
  pcall(self.maintainer.await, self.maintainer)
  local tasks = {}
  for _, r in pairs(self.running) do tasks[#tasks + 1] = r.task end
  if #tasks > 0 then
    local _, pending = async.wait(tasks, {timeout = deadline or 10})
    for _, t in ipairs(pending) do t:cancel("worker shutdown") end
    for _, t in ipairs(pending) do pcall(t.await, t) end
  end
  self.stopped:resolve()
end
worker_mt.__close = function(w) w:stop() end

-- w:wait(): waits until the worker has been stopped.
function Worker:wait() return self.stopped:await() end

function worker_mt.__tostring(w)
  return format("JobWorker<%s, %d running%s>", w.name, w.nrunning, w.stopping and ", stopped" or "")
end

require("async.class").check_self(Worker, worker_mt)  -- a wrong self raises at once
M.Worker = Worker
return M
