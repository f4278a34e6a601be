-- cancellation.lua: stop a task, let it clean up, and protect what must finish.
-- asyncio: task.cancel(), `except CancelledError: cleanup; raise`, asyncio.shield.
local async = require "async"

-- A long-running worker. Cancellation arrives as an async.Cancelled error
-- raised from the call that was waiting (here async.sleep); the worker
-- cleans up and re-raises it, so the task ends as cancelled.
local steps, cleaned = 0, false
local function worker()
  local ok, err = pcall(function()
    while true do
      steps = steps + 1
      print("  working... step " .. steps)
      async.sleep(0.02)
    end
  end)
  assert(not ok)
  if async.is_cancelled(err) then
    print("  worker cancelled (" .. err.message .. "), cleaning up")
    async.sleep(0.01)                    -- cleanup may wait
    cleaned = true
  end
  error(err, 0)                          -- re-raise: do not swallow it
end

local task = async.spawn(worker)
async.sleep(0.05)
assert(task:cancel("shutting down"))     -- true: the task was not done yet
local ok, err = pcall(task.await, task)
print("awaiting it raised: " .. tostring(err))
assert(not ok and async.is_cancelled(err) and err.message == "shutting down")
assert(task:cancelled() and task:state() == "cancelled" and cleaned and steps >= 2)
assert(task:cancel() == false)           -- false: already done

-- Cancellation is delivered only at a wait. A task cancelled while it runs
-- (or after it was woken but before it ran) finishes its current step and
-- sees the error at its next wait, async.sleep(0) included.
local progress = {}
local busy = async.spawn(function()
  async.current():cancel("cancel while running")
  progress[#progress + 1] = "still running after cancel()"
  local ok2, e = pcall(async.sleep, 0)
  progress[#progress + 1] = tostring(e)
  error(e, 0)
end)
pcall(busy.await, busy)
print("  " .. table.concat(progress, " -> "))
assert(progress[1] and progress[2] == "Cancelled: cancel while running")

-- Cancelling a task that is awaiting another one cancels that one too (as
-- in asyncio): the awaited work has nobody left to hand its result to.
local child = async.spawn(async.sleep, 5)
local parent = async.spawn(function() return child:await() end)
async.sleep(0.01)
parent:cancel()
pcall(parent.await, parent)
async.sleep(0)
print(("parent %s, child %s"):format(parent:state(), child:state()))
assert(parent:cancelled() and child:cancelled())

-- shield waits for a task (or spawns a function) without passing the
-- waiter's cancellation on: the caller gives up, the work goes on.
local saved = {}
local function save(record)
  async.sleep(0.03)                      -- a write that must not be torn
  saved[#saved + 1] = record
  return "saved " .. record
end
local request = async.spawn(function() return async.shield(save, "order-42") end)
async.sleep(0.01)
request:cancel("client disconnected")
ok, err = pcall(request.await, request)
print(("request %s; the save goes on: %d saved so far"):format(request:state(), #saved))
assert(request:cancelled() and #saved == 0)
async.sleep(0.04)
print("  " .. saved[1])
assert(saved[1] == "order-42")

-- shield on a task returns its results when the waiter is not cancelled.
local t = async.spawn(save, "order-43")
assert(async.shield(t) == "saved order-43")

-- A handler that swallows Cancelled makes the task finish normally: the
-- cancellation is then just a request the task declined.
local stubborn = async.spawn(function()
  pcall(async.sleep, 5)
  return "ignored the cancel"
end)
async.sleep(0)
stubborn:cancel()
print("swallowing: " .. stubborn:await() .. ", state " .. stubborn:state())
assert(stubborn:state() == "done")
print("cancellation: ok")
