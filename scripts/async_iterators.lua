-- async_iterators.lua: iterators whose steps wait, and results as they come.
-- asyncio: `async for` over __anext__ / async generators, asyncio.as_completed.
-- In lasync a generic `for` is enough: its iterator runs in the task, so it
-- may wait, and a coroutine.wrap generator may wait inside a task too.
local async = require "async"

-- __anext__'s counterpart: a plain closure that waits before each value.
local function countdown(n)
  return function()
    if n <= 0 then return nil end        -- StopAsyncIteration
    async.sleep(0.01)
    n = n - 1
    return n
  end
end

local seen = {}
for i in countdown(5) do seen[#seen + 1] = i end
print("countdown: " .. table.concat(seen, " "))
assert(table.concat(seen, " ") == "4 3 2 1 0")

-- An async generator: coroutine.wrap, with async.sleep between yields.
-- The sleep suspends the whole task, not just the generator, and other
-- tasks run meanwhile.
local function fetch_pages(url, max_pages)
  return coroutine.wrap(function()
    for page = 1, max_pages do
      async.sleep(0.02)                  -- the API call for one page
      local items = {}
      for i = 1, 5 do items[i] = ("item_%d_%d"):format(page, i) end
      coroutine.yield(page, {url = url .. "?page=" .. page, data = items})
    end
  end)
end

local total = 0
for page, body in fetch_pages("https://api.example.com/items", 3) do
  print(("page %d: %d items from %s"):format(page, #body.data, body.url))
  total = total + #body.data
end
assert(total == 15)

-- Two tasks draining generators at once: their pages interleave.
local order = {}
local function drain(name)
  local n = 0
  for page in fetch_pages(name, 3) do
    order[#order + 1] = name .. page
    n = n + 1
  end
  return n
end
local counts = async.gather(function() return drain("a") end, function() return drain("b") end)
print("interleaved: " .. table.concat(order, " "))
assert(counts[1] == 3 and counts[2] == 3)
assert(table.concat(order, " ") == "a1 b1 a2 b2 a3 b3")

-- Cancelling the task raises async.Cancelled inside the generator, at the
-- wait it is in, so the generator's `<close>` variables run. (They must not
-- wait: Lua closes a failed coroutine's variables where nothing can yield.)
local released = false
local function ticker()
  return coroutine.wrap(function()
    local _ <close> = setmetatable({}, {__close = function() released = true end})
    for i = 1, math.huge do
      async.sleep(0.01)
      coroutine.yield(i)
    end
  end)
end
local stream = async.spawn(function()
  for _ in ticker() do end
end)
async.sleep(0.05)
stream:cancel()
assert(not pcall(stream.await, stream) and stream:cancelled())
print("cancelled stream released its generator: " .. tostring(released))
assert(released)

-- as_completed: handle each result as soon as it is ready (fastest first),
-- not in the order the work was started.
local delays = {server1 = 0.05, server2 = 0.01, server3 = 0.03}
local tasks = {}
for _, name in ipairs{"server1", "server2", "server3"} do
  tasks[#tasks + 1] = async.spawn(function()
    async.sleep(delays[name])
    return name
  end)
end
local arrival = {}
for task in async.as_completed(tasks) do
  arrival[#arrival + 1] = task:result()
  print("  answered: " .. arrival[#arrival])
end
assert(table.concat(arrival, " ") == "server2 server3 server1")

-- With a deadline, as_completed raises async.Timeout when it passes;
-- what had not finished by then is still running, so cancel it.
local slow = {
  async.spawn(function() async.sleep(0.01) return "quick" end),
  async.spawn(function() async.sleep(5) return "too slow" end),
}
local got = {}
local ok, err = pcall(function()
  for task in async.as_completed(slow, 0.05) do got[#got + 1] = task:result() end
end)
print(("with a deadline: got %s, then %s"):format(table.concat(got, ","), tostring(err)))
assert(not ok and async.is_timeout(err) and got[1] == "quick" and #got == 1)
slow[2]:cancel()
print("async_iterators: ok")
