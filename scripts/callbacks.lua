-- callbacks.lua: plain callbacks on the loop, with handles to cancel them.
-- asyncio: loop.call_soon(fn), loop.call_later(delay, fn), handle.cancel(),
-- and a future completed from a callback (loop.create_future()).
local async = require "async"

local log = {}
local function note(msg) log[#log + 1] = msg end

-- call_soon runs fn(...) on the loop's next round; call_later after a
-- delay. Both return a handle. Callbacks are not tasks: they run to the
-- end without waiting (to wait, spawn a task from the callback).
local soon = async.call_soon(note, "soon")
-- (The 10 ms one is armed first: armed second, a loaded machine could
-- arm it more than 10 ms after the 20 ms one, and the order below flip.)
local sooner = async.call_later(0.01, note, "later (10 ms)")
local later = async.call_later(0.02, note, "later (20 ms)")
local dropped = async.call_later(0.01, note, "never")
print("handles: " .. tostring(soon) .. " " .. tostring(later))
assert(dropped:cancel() == true)         -- true: it had not run yet
assert(dropped:cancelled() and dropped:cancel() == false)

note("main, before waiting")
async.sleep(0.03)
print("order: " .. table.concat(log, " | "))
assert(table.concat(log, "|") == "main, before waiting|soon|later (10 ms)|later (20 ms)")
assert(tostring(later) == "Handle<done>" and later:cancel() == false)

-- Bridging a callback-style API to tasks: the callback settles a future
-- and any task can await it.
local function legacy_lookup(key, on_result)
  async.call_later(0.01, function()
    if key == "missing" then on_result("no such key") else on_result(nil, key:upper()) end
  end)
end
local function lookup(key)
  local f = async.future()
  legacy_lookup(key, function(err, value)
    if err then f:reject(err) else f:resolve(value) end
  end)
  return f:await()
end
print("lookup: " .. lookup("answer"))
assert(lookup("answer") == "ANSWER")
local ok, err = pcall(lookup, "missing")
assert(not ok and err == "no such key")

-- A debouncer: each new event cancels the pending flush and schedules a
-- new one, so a burst of events causes one flush.
local flushed = {}
local pending, batch = nil, {}
local function on_event(e)
  batch[#batch + 1] = e
  if pending then pending:cancel() end
  pending = async.call_later(0.02, function()
    flushed[#flushed + 1] = table.concat(batch, ",")
    batch, pending = {}, nil
  end)
end
for i = 1, 5 do on_event("e" .. i) async.sleep(0) end   -- a burst
async.sleep(0.05)
on_event("e6")
async.sleep(0.05)
print("debounced flushes: " .. table.concat(flushed, " / "))
assert(#flushed == 2 and flushed[1] == "e1,e2,e3,e4,e5" and flushed[2] == "e6")

-- A periodic callback, rescheduling itself; its latest handle stops it.
local ticks, ticker = 0, nil
local third = async.future()
local function tick()
  ticks = ticks + 1
  if ticks == 3 then third:resolve() end
  ticker = async.call_later(0.01, tick)
end
ticker = async.call_soon(tick)
third:await()
assert(ticker:cancel())
async.sleep(0.03)
print("ticks: " .. ticks)
assert(ticks == 3)

-- A callback can start a task, which may wait.
local done = async.future()
async.call_soon(function()
  async.spawn(function() async.sleep(0.01) done:resolve("task from a callback") end)
end)
print(done:await())
print("callbacks: ok")
