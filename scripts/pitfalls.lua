-- pitfalls.lua: the guides' "common pitfalls", and how they look in lasync.
local async = require "async"

-- 1. "Forgetting to await": there is nothing to forget. Calling a function
-- that waits runs it to the end; only spawn makes something concurrent.
local function fetch() async.sleep(0.01) return "data" end
assert(fetch() == "data")                -- not a coroutine object: the data

-- 2. Blocking the loop. Tasks switch only at waits, so a long computation
-- (or os.execute("sleep 1"), or a blocking read) stops every other task.
-- Break CPU work into chunks with async.sleep(0), which lets every other
-- ready task run, then continues.
local ticks = 0
local ticker = async.spawn(function()
  while true do ticks = ticks + 1 async.sleep(0) end
end)
async.sleep(0)

local function crunch(n, chunk)
  local sum = 0
  for i = 1, n do
    sum = sum + i % 7
    if chunk and i % chunk == 0 then async.sleep(0) end
  end
  return sum
end
local before = ticks
crunch(200000)                           -- no waits: the ticker is frozen
local frozen = ticks - before
before = ticks
crunch(200000, 20000)                    -- ten chunks: the ticker keeps going
local shared = ticks - before
print(("ticker ran %d times during blocking work, %d times during chunked work"):format(
  frozen, shared))
assert(frozen == 0 and shared >= 10)
ticker:cancel()

-- 3. Exceptions in background tasks. A failed task that nobody awaits is
-- reported on stderr when it is collected or when the program ends, never
-- lost; but a done callback (or a scope) is the way to handle it.
local failures = {}
local function background(fn)
  local t = async.spawn(fn)
  t:add_done_callback(function(task)
    if task:error() ~= nil and not task:cancelled() then
      failures[#failures + 1] = tostring(task:error())
    end
  end)
  return t
end
background(function() async.sleep(0.01) error("disk full", 0) end)
background(function() async.sleep(0.01) end)
async.sleep(0.02)
print("background failures handled: " .. table.concat(failures, ", "))
assert(#failures == 1 and failures[1] == "disk full")

-- 4. Too many concurrent tasks without limits: tasks are cheap (see demo.lua),
-- but the services they talk to are not. Cap concurrency with a fixed set
-- of workers in a scope (batch.lua).

-- 5. Not closing resources: use `<close>` variables (close_managers.lua);
-- they run on return, error and cancellation.

-- 6. Using a plain sleep: os.execute("sleep 1") or a busy wait blocks the
-- loop; async.sleep suspends only the calling task.
local start = async.time()
local sleepers = {}
for i = 1, 100 do sleepers[i] = async.spawn(async.sleep, 0.02) end
async.gather(sleepers)
print(("100 tasks slept 0.02 s each, together in %.3f s"):format(async.time() - start))
print("pitfalls: ok")
