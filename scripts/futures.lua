-- futures.lua: futures, the one-shot result slots beneath tasks, and a
-- producer/consumer stream built from them.
-- asyncio: loop.create_future(), fut.set_result / set_exception, await fut.
local async = require "async"

-- A future is settled once, by whoever holds it; any number of tasks may
-- await it, before or after it is settled.
local config = async.future()
local readers = {}
for i = 1, 3 do
  readers[i] = async.spawn(function()
    return ("reader %d sees %s"):format(i, config:await().mode)
  end)
end
async.call_later(0.01, function() config:resolve({mode = "production"}) end)
for i = 1, 3 do print("  " .. readers[i]:await()) end
assert(readers[3]:result() == "reader 3 sees production")
print("late await: " .. config:await().mode)          -- already settled: no wait

-- The first outcome wins: later resolve/reject return false and change
-- nothing, so racing producers need no coordination.
assert(config:resolve({mode = "test"}) == false and config:reject("too late") == false)
assert(config:result().mode == "production" and config:done())

-- reject settles it with an error, which await raises in every waiter.
local lookup = async.future()
lookup:add_done_callback(function(f)
  print("  callback: lookup settled, error = " .. tostring(f:error()))
end)
async.call_soon(function() lookup:reject("host not found") end)
local ok, err = pcall(lookup.await, lookup)
assert(not ok and err == "host not found" and lookup:error() == "host not found")
async.sleep(0)                                       -- let the done callback run

-- A stream from a chain of futures: each link resolves to a value and the
-- next link, so every consumer sees every item, in order, at its own pace,
-- and the producer never waits for them (pub/sub without a queue).
local function stream()
  local s = {head = async.future()}
  s.tail = s.head
  function s:publish(v)
    local nxt = async.future()
    self.tail:resolve(v, nxt)
    self.tail = nxt
  end
  function s:close() self.tail:resolve(nil) end
  function s:subscribe()                 -- a generic-for iterator that waits
    local link = self.head
    return function()
      local v, nxt = link:await()
      link = nxt
      return v
    end
  end
  return s
end

local prices = stream()
local function consumer(name, pace)
  local seen = {}
  for price in prices:subscribe() do
    seen[#seen + 1] = price
    async.sleep(pace)                    -- a slow consumer only delays itself
  end
  print(("  %s got %d prices"):format(name, #seen))
  return table.concat(seen, " ")
end
local consumers = {
  async.spawn(consumer, "fast", 0),
  async.spawn(consumer, "slow", 0.01),
}
for i = 1, 10 do
  prices:publish(100 + i)
  async.sleep(0.002)
end
prices:close()
local got = async.gather(consumers)
local expected = "101 102 103 104 105 106 107 108 109 110"
assert(got[1] == expected and got[2] == expected)

-- Cancelling a future wakes its awaiters with async.Cancelled. (Cancelling
-- a task that awaits a future cancels the future too, as in asyncio.)
local reply = async.future()
local waiter = async.spawn(function() return reply:await() end)
async.sleep(0)
reply:cancel("request withdrawn")
ok, err = pcall(waiter.await, waiter)
print("cancelled future: " .. tostring(err))
assert(reply:cancelled() and async.is_cancelled(err) and waiter:cancelled())
print("futures: ok")
