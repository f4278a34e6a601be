-- async.executor: Lua on worker threads. async.to_thread and executor
-- objects are C (async.core.executor, host/thread/executor.c and host/thread/pool.c);
-- this file adds executor:map, which composes submit.
local core = require "async.core.executor"
local async = require "async"

local type, error, pcall, format, tostring = type, error, pcall, string.format, tostring
local ceil, move = math.ceil, table.move

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

local function cancel_all(futures)
  for i = 1, #futures do futures[i]:cancel("map: cancelled") end
end

-- executor:map(fn, list [, {chunksize = n, timeout = sec}]): fn(list[i])
-- for each item on the workers; returns the first result of each, in list
-- order ({n = #list}). The first error (or the timeout) cancels the rest
-- and is raised. chunksize > 1 sends the items in groups, one job each.
function Executor.map(self, fn, list, opts)
  if type(fn) ~= "function" then
    error(format("bad argument #1 to 'map' (function expected, got %s)", type(fn)), 2)
  end
  if type(list) ~= "table" then
    error(format("bad argument #2 to 'map' (table expected, got %s)", type(list)), 2)
  end
  local size, timeout = check_opts(opts)
  local n = list.n or #list
  local futures = {}
  for i = 1, ceil(n / size) do
    local first = (i - 1) * size + 1
    local last = math.min(first + size - 1, n)
    if size == 1 then futures[i] = self:submit(fn, list[first])
    else futures[i] = self:submit(apply_chunk, fn, move(list, first, last, 1, {}), last - first + 1) end
  end
  local out = {n = n}
  local function collect()
    for i = 1, #futures do
      if size == 1 then out[i] = (futures[i]:await())
      else move(futures[i]:await(), 1, size, (i - 1) * size + 1, out) end
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
