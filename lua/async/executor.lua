-- async.executor: Lua on worker threads. async.to_thread and executor
-- objects are C (async.core.executor, host/thread/executor.c and host/thread/pool.c);
-- this file adds executor:map, which composes submit.
local core = require "async.core.executor"
local async = require "async"

local type, error, pcall, format, tostring = type, error, pcall, string.format, tostring
local move, pairs = table.move, pairs

local M = {to_thread = core.to_thread, executor = core.executor, default = core.default}
local Executor = core.Executor

-- Runs in the worker: fn over one chunk of the list, first result each.
-- It crosses as bytecode, so it may use no upvalue but _ENV.
local function apply_chunk(fn, chunk, n)
  local out = {}
  for i = 1, n do out[i] = (fn(chunk[i])) end
  return out, n
end

local function check_opts(opts)
  if opts == nil then return 1, nil end
  if type(opts) ~= "table" then
    error(format("bad argument #3 to 'map' (table expected, got %s)", type(opts)), 3)
  end
  for k in pairs(opts) do
    if k ~= "chunksize" and k ~= "timeout" then
      error(format("map: unknown option '%s'", tostring(k)), 3)
    end
  end
  local size = opts.chunksize or 1
  if math.type(size) ~= "integer" or size < 1 then
    error(format("map: chunksize must be a positive integer (got %s)", tostring(size)), 3)
  end
  if opts.timeout ~= nil and (type(opts.timeout) ~= "number" or opts.timeout ~= opts.timeout) then
    error(format("map: timeout must be a number (got %s)", tostring(opts.timeout)), 3)
  end
  return size, opts.timeout
end

-- Jobs a map keeps in flight per worker: enough that a worker finds its
-- next job queued while the task collects a result, few enough that memory
-- does not grow with the list (a map over n = 1e8 once built every job at
-- once: 13 GB, and no timeout could fire while it did).
local WINDOW = 4

local function cancel_all(futures)
  for _, f in pairs(futures) do f:cancel("map: cancelled") end
end

-- The number of items: list.n (an integral number) or #list.
local function count(list)
  local n = list.n
  if n == nil then return #list end
  local i = math.tointeger(n)
  if i == nil or i < 0 then
    error(format("map: list.n must be a count of items (got %s)", tostring(n)), 3)
  end
  return i
end

-- executor:map(fn, list [, {chunksize = n, timeout = sec}]): fn(list[i])
-- for each item on the workers; returns the first result of each, in list
-- order ({n = #list}). The first error (or the timeout) cancels the rest
-- and is raised. chunksize > 1 sends the items in groups, one job each.
-- Jobs are submitted as results come back, at most WINDOW per worker ahead
-- of the one awaited, so the task waits (and can be cancelled) all along.
function Executor.map(self, fn, list, opts)
  if type(fn) ~= "function" then
    error(format("bad argument #1 to 'map' (function expected, got %s)", type(fn)), 2)
  end
  if type(list) ~= "table" then
    error(format("bad argument #2 to 'map' (table expected, got %s)", type(list)), 2)
  end
  local size, timeout = check_opts(opts)
  local n = count(list)
  local jobs, window = (n + size - 1) // size, WINDOW * self:stats().workers
  local futures, submitted = {}, 0
  local function submit_next()
    submitted = submitted + 1
    local first = (submitted - 1) * size + 1
    if size == 1 then futures[submitted] = self:submit(fn, list[first]) return end
    local last = math.min(first + size - 1, n)
    futures[submitted] = self:submit(apply_chunk, fn, move(list, first, last, 1, {}), last - first + 1)
  end
  local out = {n = n}
  local function collect()
    for i = 1, jobs do
      while submitted < jobs and submitted - i < window - 1 do submit_next() end
      local f = futures[i]
      if size == 1 then out[i] = (f:await())
      else move(f:await(), 1, size, (i - 1) * size + 1, out) end
      futures[i] = nil
    end
  end
  local ok, err
  if timeout then ok, err = pcall(async.timeout, timeout, collect)
  else ok, err = pcall(collect) end
  if not ok then
    cancel_all(futures)
    error(err, 0)
  end
  out.n = n
  return out
end

return M
