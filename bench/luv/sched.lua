-- sched.lua: a minimal coroutine scheduler on luv, the "plain Lua + luv" peer.
-- A task is a coroutine plus a table. Ready tasks sit in a FIFO drained once per loop
-- iteration by a uv_check handle; a uv_idle handle is active while the FIFO is not empty
-- so the loop polls without blocking. sleep(sec > 0) uses one uv_timer per sleep.
local uv = require "luv"

local M = {}
local ready, nready, spare = {}, 0, {}  -- the FIFO; swapped with spare before draining
local current                           -- the task now running
local idle_on = false
local check, idle = uv.new_check(), uv.new_idle()
local function noop() end

local function push(t, v)
  t.val = v
  nready = nready + 1
  ready[nready] = t
  if not idle_on then idle_on = true; idle:start(noop) end
end

local function finish(t, ok, v)
  t.done, t.ok, t.result = true, ok, v
  local w = t.waiters
  if w then for i = 1, #w do push(w[i]) end end
end

local function step(t)
  current = t
  local ok, v
  local args = t.args
  if args then t.args = nil; ok, v = coroutine.resume(t.co, table.unpack(args, 1, args.n))
  else ok, v = coroutine.resume(t.co, t.val) end
  current = nil
  if not ok or coroutine.status(t.co) == "dead" then finish(t, ok, v) end
end

local function drain()
  local list, n = ready, nready
  ready, nready, spare = spare, 0, list   -- wake-ups during the drain go to the next round
  for i = 1, n do
    local t = list[i]; list[i] = nil
    step(t)
  end
  if nready == 0 and idle_on then idle_on = false; idle:stop() end
end
check:start(drain)
check:unref()   -- only timers and pending ready tasks keep the loop alive

function M.spawn(fn, ...)
  local t = {co = coroutine.create(fn), args = table.pack(...)}
  push(t)
  return t
end

function M.sleep(sec)
  local t = current
  if sec <= 0 then push(t); return coroutine.yield() end
  local timer = uv.new_timer()
  timer:start(math.ceil(sec * 1000 - 1e-6), 0, function() timer:close(); push(t) end)
  return coroutine.yield()
end

function M.await(t)
  if not t.done then
    local w = t.waiters
    if not w then w = {}; t.waiters = w end
    w[#w + 1] = current
    repeat coroutine.yield() until t.done
  end
  if not t.ok then error(t.result, 0) end
  return t.result
end

function M.gather(list)
  local res = {n = #list}
  for i = 1, #list do res[i] = M.await(list[i]) end
  return res
end

function M.time() return uv.hrtime() / 1e9 end

-- Bounded FIFO queue: put waits while full, get waits while empty; after close, get
-- drains what is left and then returns nil.
local Queue = {}
Queue.__index = Queue

function M.queue(maxsize)
  return setmetatable({items = {}, head = 1, tail = 0, max = maxsize or 0,
                       getters = {}, putters = {}, closed = false}, Queue)
end

local function wake_one(list)
  local t = table.remove(list, 1)
  if t then push(t) end
end

function Queue:put(v)
  while self.max > 0 and self.tail - self.head + 1 >= self.max and not self.closed do
    self.putters[#self.putters + 1] = current
    coroutine.yield()
  end
  if self.closed then error("put on a closed queue", 2) end
  self.tail = self.tail + 1
  self.items[self.tail] = v
  wake_one(self.getters)
end

function Queue:get()
  while self.tail < self.head do
    if self.closed then return nil end
    self.getters[#self.getters + 1] = current
    coroutine.yield()
  end
  local h = self.head
  local v = self.items[h]
  self.items[h] = nil
  if h == self.tail then self.head, self.tail = 1, 0 else self.head = h + 1 end
  wake_one(self.putters)
  return v
end

function Queue:close()
  self.closed = true
  for _, list in ipairs{self.getters, self.putters} do
    for i = 1, #list do push(list[i]) end
    for i = #list, 1, -1 do list[i] = nil end
  end
end

function Queue:iter() return function() return self:get() end end

-- Runs fn as the main task until the loop has nothing left; returns its first result.
function M.run(fn, ...)
  local t = M.spawn(fn, ...)
  uv.run()
  if not t.done then error("main task never finished (deadlock)") end
  if not t.ok then error(t.result, 0) end
  return t.result
end

return M
