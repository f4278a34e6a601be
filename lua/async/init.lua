-- async: the task API. Mechanism (tasks, waits, timers, futures) is C in
-- async.core; this file composes it: gather, settle, wait, timeouts,
-- shield, as_completed and task scopes.
local core = require "async.core"

local spawn, current, cancel, withdraw = core.spawn, core.current, core.cancel, core.withdraw
local future, call_later, new_cancelled = core.future, core.call_later, core.new_cancelled
local is_cancelled, watch = core.is_cancelled, core.watch
local Task, TaskUnseen, Future, Timeout = core.Task, core.TaskUnseen, core.Future, core.Timeout
local pack, unpack, select, type, error, pcall = table.pack, table.unpack, select, type, error, pcall
local getmetatable, setmetatable, tostring, format = getmetatable, setmetatable, tostring, string.format

local async = {
  spawn = spawn, current = current, sleep = core.sleep, time = core.time,
  future = future, call_soon = core.call_soon, call_later = call_later,
  Cancelled = core.Cancelled, Timeout = Timeout,
}

local function is_awaitable(x)
  local mt = getmetatable(x)
  return mt == Task or mt == Future or mt == TaskUnseen
end
async.is_awaitable = is_awaitable

function async.is_cancelled(e) return is_cancelled(e) end
function async.is_timeout(e) return getmetatable(e) == Timeout end

local function new_timeout(sec)
  return setmetatable({kind = "Timeout", message = format("timed out after %g s", math.max(sec, 0))},
                      Timeout)
end

-- Whether a finished task or future ended in error (error(nil) included).
local function failed(x)
  local s = x:state()
  return s == "failed" or s == "cancelled"
end

local function in_task(what)
  return current() or error(what .. ": not inside a task", 3)
end

function async.await(x)
  if not is_awaitable(x) then
    error(format("bad argument #1 to 'await' (task or future expected, got %s)", type(x)), 2)
  end
  return x:await()
end

-- Cancel scopes (timeouts and task scopes) cancel their own task with an
-- error of their own at a depth one deeper than the enclosing scope, so an
-- outer scope's cancellation wins over an inner one, and each scope knows
-- whether a Cancelled that reaches it is its own.
local depths = setmetatable({}, {__mode = "k"})

local function scope_enter(task)
  local d = (depths[task] or 0) + 1
  depths[task] = d
  return d
end

local function scope_exit(task, d)
  depths[task] = d > 1 and d - 1 or nil
end

-- Waits until x is done without cancelling x when the waiter is cancelled.
local function wait_done(x)
  if x:done() then return end
  local f = future()
  x:add_done_callback(function() f:resolve() end)
  f:await()
end

local function check_number(v, i, what)
  if type(v) ~= "number" or v ~= v then
    error(format("bad argument #%d to '%s' (number expected, got %s)", i, what,
                 v ~= v and "nan" or type(v)), 3)
  end
end

local function check_callable(v, i, what)
  local mt = getmetatable(v)
  if type(v) ~= "function" and not (mt and mt.__call) then
    error(format("bad argument #%d to '%s' (function expected, got %s)", i, what, type(v)), 3)
  end
end

--------------------------------------------------------------- timeouts

-- Runs fn(...) in the current task with a deadline; raises async.Timeout
-- when it passes (fn sees async.Cancelled at the point it was waiting).
function async.timeout(sec, fn, ...)
  check_number(sec, 1, "timeout")
  check_callable(fn, 2, "timeout")
  local me = in_task("async.timeout")
  if sec == math.huge then return fn(...) end
  local d = scope_enter(me)
  local err = new_cancelled(format("timed out after %g s", math.max(sec, 0)))
  local fired, h = false, nil
  if sec <= 0 then
    -- Due already: cancel at the block's first wait, sleep(0) included (a
    -- timer would fire only after the block's next round had run).
    fired = true
    cancel(me, err, d)
  else
    h = call_later(sec, function()
      fired = true
      cancel(me, err, d)
    end)
  end
  local res = pack(pcall(fn, ...))
  if h then h:cancel() end
  scope_exit(me, d)
  -- Only our own Cancelled becomes our Timeout: an outer scope's (even
  -- one firing at the same instant) passes through to its owner.
  if fired then withdraw(me, err) end
  if not res[1] and res[2] == err then error(new_timeout(sec), 0) end
  if res[1] then return unpack(res, 2, res.n) end
  error(res[2], 0)
end

-- wait_for(sec, fn, ...) runs fn with a deadline (as timeout); wait_for(sec,
-- task) waits for a task or future and, on timeout, cancels it and waits
-- for it to finish before raising async.Timeout.
function async.wait_for(sec, x, ...)
  check_number(sec, 1, "wait_for")
  if not is_awaitable(x) then
    check_callable(x, 2, "wait_for")
    return async.timeout(sec, x, ...)
  end
  local res = pack(pcall(async.timeout, sec, x.await, x))
  if res[1] then return unpack(res, 2, res.n) end
  if async.is_timeout(res[2]) then
    wait_done(x)                          -- cancelled with its awaiter: let its cleanup end
    -- Its cleanup failed with an error of its own: that error, not the
    -- Timeout, as wait_for(sec, fn) passes it through.
    if x:state() == "failed" then return x:result() end
  end
  error(res[2], 0)
end

------------------------------------------------------------- gathering

-- The awaitables of gather/settle/wait: a list, or the arguments.
local function collect(what, ...)
  local list = ...
  local n = select("#", ...)
  if n == 1 and type(list) == "table" and not is_awaitable(list) then
    n = list.n or #list
  else
    list = pack(...)
  end
  local me = current()
  for i = 1, n do                       -- check all before starting any
    local x = list[i]
    if type(x) ~= "function" and not is_awaitable(x) then
      error(format("%s: item %d is a %s (task, future or function expected)",
                   what, i, type(x)), 3)
    elseif x == me then
      error(format("%s: item %d is the current task (a task cannot wait for itself)", what, i), 3)
    end
  end
  local out = {n = n}
  for i = 1, n do
    local x = list[i]
    out[i] = type(x) == "function" and spawn(x) or x
  end
  return out
end

local function cancel_pending(list, msg)
  for i = 1, list.n or #list do
    if not list[i]:done() then list[i]:cancel(msg) end
  end
end

-- gather(a, b, ...) or gather(list): waits for all; returns a table of the
-- first result of each (n = count). The first error cancels the others and
-- is raised; cancelling the gathering task cancels them all.
function async.gather(...)
  local items = collect("gather", ...)
  in_task("async.gather")
  local ok, i = pcall(watch, items, items.n, "first_error")
  if not ok then
    cancel_pending(items, "gather: cancelled")
    error(i, 0)
  end
  local first = items[i]
  if first and failed(first) then
    cancel_pending(items, "gather: another task failed")
    return first:result()                 -- raises, with the child's traceback
  end
  return core.first_results(items, items.n)
end

-- settle(...): like gather but never raises for a child: returns results
-- and errors, tables by index (n = count).
function async.settle(...)
  local items = collect("settle", ...)
  in_task("async.settle")
  local ok, err = pcall(watch, items, items.n, "all")
  if not ok then
    cancel_pending(items, "settle: cancelled")
    error(err, 0)
  end
  local results, errors = {n = items.n}, {n = items.n}
  for i = 1, items.n do
    if failed(items[i]) then errors[i] = items[i]:error() else results[i] = items[i]:result() end
  end
  return results, errors
end

local modes = {first = true, first_error = true, all = true}

-- wait(list, {timeout=, return_when="first"|"first_error"|"all"}): waits
-- without cancelling anything; returns done, pending (lists, list order).
function async.wait(list, opts)
  if type(list) ~= "table" then
    error(format("bad argument #1 to 'wait' (list expected, got %s)", type(list)), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error(format("bad argument #2 to 'wait' (options table expected, got %s; "
                 .. "a timeout is {timeout = sec})", type(opts)), 2)
  end
  opts = opts or {}
  local when = opts.return_when or "all"
  if not modes[when] then
    error(format("wait: return_when must be \"first\", \"first_error\" or \"all\" (got %s)",
                 tostring(when)), 2)
  end
  if opts.timeout ~= nil then check_number(opts.timeout, 2, "wait") end
  local items = collect("wait", list)
  in_task("async.wait")
  local ok, err = pcall(async.timeout, opts.timeout or math.huge, watch, items, items.n, when)
  if not ok and not async.is_timeout(err) then error(err, 0) end
  local done, pending = {}, {}
  for i = 1, items.n do
    local t = items[i]
    if t:done() then done[#done + 1] = t else pending[#pending + 1] = t end
  end
  return done, pending
end

-- for t in async.as_completed(list [, timeout]) do ... end: yields each
-- task or future as it finishes; raises async.Timeout past the deadline.
function async.as_completed(list, timeout)
  local items = collect("as_completed", list)
  if timeout ~= nil then check_number(timeout, 2, "as_completed") end
  local deadline = timeout and core.time() + timeout
  local finished, head, tail, waiter = {}, 1, 0, nil
  local function on_done(t)
    tail = tail + 1
    finished[tail] = t
    if waiter then waiter:resolve() end
  end
  for i = 1, items.n do items[i]:add_done_callback(on_done) end
  local left = items.n
  return function()
    if left == 0 then return nil end
    while finished[head] == nil do
      waiter = future()
      if deadline then
        local ok, err = pcall(async.timeout, math.max(0, deadline - core.time()), waiter.await, waiter)
        if not ok then
          for i = 1, items.n do items[i]:remove_done_callback(on_done) end
          error(err, 0)
        end
      else
        waiter:await()
      end
      waiter = nil
    end
    local t = finished[head]
    finished[head] = nil
    head, left = head + 1, left - 1
    return t
  end
end

-- shield(x): waits for a task or future (or a function, spawned) like
-- x:await(), but cancelling the waiter does not cancel x.
function async.shield(x, ...)
  if type(x) == "function" then x = spawn(x, ...)
  elseif not is_awaitable(x) then
    error(format("bad argument #1 to 'shield' (task, future or function expected, got %s)", type(x)), 2)
  end
  if in_task("async.shield") == x then error("shield: a task cannot wait for itself", 2) end
  wait_done(x)
  return x:await()
end

---------------------------------------------------------------- scopes

local Group = {}
Group.__index = Group
Group.__name = "lasync.Scope"

-- group:spawn(fn, ...): a child task of the scope.
function Group:spawn(fn, ...)
  check_callable(fn, 1, "spawn")
  if self.closed then error("scope:spawn: the scope has ended", 2) end
  local t = spawn(fn, ...)
  self.children[#self.children + 1] = t
  t:add_done_callback(self.on_done)
  return t
end

-- group:cancel(): cancels the children and the scope's body; the scope
-- then ends without error.
function Group:cancel()
  if self.closed then return end
  self.cancelled = true
  cancel_pending(self.children, "scope cancelled")
  cancel(self.task, self.stop_self, self.depth)
end

function Group:tasks() return table.move(self.children, 1, #self.children, 1, {}) end

Group.__tostring = function(self)
  return format("Scope<%d children%s>", #self.children, self.closed and ", ended" or "")
end
require("async.class").check_self(Group)  -- a wrong self raises at once

-- scope(fn, ...): runs fn(group, ...) and waits for every task spawned in
-- the group. The first child failure cancels the other children and the
-- body, and is raised; cancelling the task cancels the children.
function async.scope(fn, ...)
  check_callable(fn, 1, "scope")
  local me = in_task("async.scope")
  local d = scope_enter(me)
  local g = setmetatable({children = {}, task = me, depth = d,
                          stop = new_cancelled("scope: a task failed"),
                          stop_self = new_cancelled("scope cancelled")}, Group)
  g.on_done = function(t)
    if t:state() ~= "failed" then return end
    if g.failed == nil then
      g.failed = t
      cancel_pending(g.children, "scope: another task failed")
      cancel(me, g.stop, d)
    else                                  -- only one error is raised; no other is lost
      core.report_failed(t, "its scope raised another task's error")
    end
  end
  local res = pack(pcall(fn, g, ...))
  local err = not res[1] and res[2] or nil
  if err ~= nil and g.failed == nil and err ~= g.stop_self then
    cancel_pending(g.children, "scope: cancelled")
  end
  -- Wait for every child, also when cancelled meanwhile (then cancel them).
  local i = 1
  while i <= #g.children do
    local ok, e = pcall(wait_done, g.children[i])
    if ok then i = i + 1
    else
      if err == nil or err == g.stop or err == g.stop_self then err = e end
      cancel_pending(g.children, "scope: cancelled")
    end
  end
  g.closed = true
  scope_exit(me, d)
  withdraw(me, g.stop)
  withdraw(me, g.stop_self)
  -- A child's failure wins over any cancellation of the scope (its own
  -- cancel, the task's, a deadline's), as in asyncio's TaskGroup: its
  -- cleanup failed, and a Cancelled raised instead would drop that error.
  if g.failed and (err == nil or is_cancelled(err)) then
    return g.failed:result()
  end
  if g.failed then core.report_failed(g.failed, "its scope raised the body's error") end
  if err == g.stop_self or (err == nil and g.cancelled) then return end
  if err ~= nil then error(err, 0) end
  return unpack(res, 2, res.n)
end

-- The rest loads on first use, so a script pays only for what it touches.
-- Submodules: async.net is require "async.net". Functions: async.lock is
-- require("async.sync").lock.
local submodules = {testing = "async.testing", debug = "async.debug", context = "async.context",
  }
local from_module = {tasks = "async.debug", dump = "async.debug",
  }
for _, k in ipairs{"queue", "lifo_queue", "priority_queue", "QueueFull", "QueueEmpty",
                  "QueueClosed"} do from_module[k] = "async.queue" end
for _, k in ipairs{"lock", "event", "condition", "semaphore", "bounded_semaphore", "barrier",
                  "BrokenBarrier"} do from_module[k] = "async.sync" end
from_module.to_thread, from_module.executor = "async.executor", "async.executor"
submodules.thread = "async.thread"
submodules.net, submodules.dns = "async.net", "async.dns"
submodules.fs, submodules.process, submodules.signal = "async.fs", "async.process", "async.signal"
submodules.repl = "async.repl"
-- The network and data modules: async.http holds the client (async.http.client)
-- and the server (async.http.server); async.jobs is the job queue on Redis.
for _, k in ipairs{"json", "http", "ws", "pg", "redis", "jobs"} do submodules[k] = "async." .. k end
for _, k in ipairs{"stdin", "stdout", "stderr"} do from_module[k] = "async.stdio" end
from_module.IOError = "async.stream"
setmetatable(async, {__index = function(t, k)
  local v
  if submodules[k] then v = require(submodules[k])
  elseif from_module[k] then v = require(from_module[k])[k]
  else return nil end
  rawset(t, k, v)
  return v
end})

return async
