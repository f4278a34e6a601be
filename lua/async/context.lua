-- async.context: task-local values, inherited by the tasks a task spawns
-- (as Python's contextvars): a request id set by a server's connection
-- handler is seen by everything that handler spawns, and by nothing else.
--
-- A task's context is a chain of layers. set() starts a new layer on top,
-- so a child keeps the layer it was spawned with: what its parent sets
-- later is not seen by it, and what it sets itself is seen only by it and
-- its own children.
local core = require "async.core"

local M = {}
local layer_mt = {}                     -- __index: the layer below

local function lookup(layer, key)
  while layer do
    local v = rawget(layer, "values")[key]
    if v ~= nil then return v end
    layer = rawget(layer, "below")
  end
  return nil
end

-- get(key [, default]): the value visible in the current task.
function M.get(key, default)
  local v = lookup(core.context(), key)
  if v == nil then return default end
  return v
end

-- set(key, value): for the current task and the tasks it spawns from now on.
function M.set(key, value)
  if key == nil then error("bad argument #1 to 'set' (key expected, got nil)", 2) end
  core.context(setmetatable({values = {[key] = value}, below = core.context()}, layer_mt))
end

-- with(values, fn, ...): calls fn(...) with the keys of `values` set, and
-- puts the context back as it was when fn returns or raises.
function M.with(values, fn, ...)
  if type(values) ~= "table" then
    error(("bad argument #1 to 'with' (table expected, got %s)"):format(type(values)), 2)
  end
  local mt = getmetatable(fn)
  if type(fn) ~= "function" and not (type(mt) == "table" and mt.__call) then
    error(("bad argument #2 to 'with' (function expected, got %s)"):format(type(fn)), 2)
  end
  local before = core.context()
  local copy = {}
  for k, v in pairs(values) do copy[k] = v end
  core.context(setmetatable({values = copy, below = before}, layer_mt))
  local res = table.pack(pcall(fn, ...))
  core.context(before or false)
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

-- all(): a table of every value visible in the current task.
function M.all()
  local out, layers = {}, {}
  local layer = core.context()
  while layer do layers[#layers + 1] = layer; layer = rawget(layer, "below") end
  for i = #layers, 1, -1 do
    for k, v in pairs(rawget(layers[i], "values")) do out[k] = v end
  end
  return out
end

return M
