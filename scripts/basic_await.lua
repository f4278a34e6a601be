-- basic_await.lua: a script is the main task, so it can wait at top level.
-- asyncio: `async def fetch_data(url)`, `await fetch_data(...)`, asyncio.run(main()).
local async = require "async"

-- There is no `async def` in lasync: any function called from a task may
-- suspend it, however deep the call. Calling it is awaiting it.
local function fetch_data(url)
  print("fetching " .. url)
  async.sleep(0.05)                      -- simulated network round trip
  return {url = url, data = "result"}
end

-- A helper two calls above the sleep needs no marking either.
local function fetch_summary(url)
  local r = fetch_data(url)
  return r.url .. " -> " .. r.data
end

print("Hello")
async.sleep(0.01)
print("World")

local result = fetch_data("https://api.example.com")
print("got " .. result.data .. " from " .. result.url)
assert(result.url == "https://api.example.com" and result.data == "result")

-- Concurrency is explicit: spawn runs a function as a new task, which
-- starts at the main task's next wait. await hands back its results (or
-- raises its error).
local task = async.spawn(fetch_summary, "https://api.example.com/2")
print("spawned " .. task:name() .. ", now " .. task:state())
local summary = task:await()             -- or async.await(task)
print(summary)
assert(summary == "https://api.example.com/2 -> result")
assert(task:state() == "done")

-- A task may return several values; await returns them all.
local sum, product = async.spawn(function(a, b)
  async.sleep(0.01)
  return a + b, a * b
end, 6, 7):await()
print("sum and product:", sum, product)
assert(sum == 13 and product == 42)
print("basic_await: ok")
