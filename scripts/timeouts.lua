-- timeouts.lua: deadlines for a call, for a task, and nested deadlines.
-- asyncio: asyncio.wait_for(coro, timeout), asyncio.timeout(...), TimeoutError.
local async = require "async"

local function slow_operation(delay)
  async.sleep(delay)
  return ("completed after %g s"):format(delay)
end

-- wait_for(sec, fn, ...) runs fn in the current task with a deadline.
print(async.wait_for(0.5, slow_operation, 0.01))
local ok, err = pcall(async.wait_for, 0.02, slow_operation, 5)
print("caught: " .. tostring(err))
assert(not ok and async.is_timeout(err))

-- Inside the block the deadline arrives as async.Cancelled, raised where it
-- was waiting, so `<close>` variables and pcall handlers can clean up; the
-- block's caller sees async.Timeout instead.
local seen_inside
ok, err = pcall(async.timeout, 0.02, function()
  local ok2, e = pcall(async.sleep, 5)
  seen_inside = e
  error(e, 0)                            -- re-raise: the cancellation is not ours
end)
print("inside the block: " .. tostring(seen_inside))
assert(async.is_cancelled(seen_inside) and async.is_timeout(err))

-- wait_for(sec, task) waits for a task; on timeout it cancels the task and
-- waits for the task's cleanup before raising.
local cleaned = false
local task = async.spawn(function()
  local ok2, e = pcall(async.sleep, 5)
  async.sleep(0.01)                      -- cleanup may wait too
  cleaned = true
  error(e, 0)
end)
ok, err = pcall(async.wait_for, 0.02, task)
print(("wait_for(task): %s; task %s, cleaned up: %s"):format(
  tostring(err), task:state(), tostring(cleaned)))
assert(async.is_timeout(err) and task:cancelled() and cleaned)

-- Nested deadlines, the inner one shorter: the inner block times out, the
-- outer one may go on (here with a fallback).
local result = async.timeout(0.5, function()
  local ok2, res = pcall(async.timeout, 0.02, slow_operation, 5)
  if not ok2 and async.is_timeout(res) then
    print("inner deadline passed, using the cache")
    return "cached value"
  end
  return res
end)
assert(result == "cached value")

-- The outer one shorter: the outer deadline wins. The inner block sees it
-- as async.Cancelled, not as its own Timeout, so a handler written for the
-- inner deadline does not swallow the outer one.
local inner_err
ok, err = pcall(async.timeout, 0.02, function()
  local ok2, e = pcall(async.timeout, 0.5, slow_operation, 5)
  inner_err = e
  if async.is_timeout(e) then return "fallback" end   -- not taken
  error(e, 0)
end)
print(("outer deadline: inner saw %s, outer raised %s"):format(tostring(inner_err), tostring(err)))
assert(async.is_cancelled(inner_err) and not async.is_timeout(inner_err))
assert(not ok and async.is_timeout(err))

-- A timeout error is a table: kind, message, and cause when the block
-- failed with something other than the deadline's own cancellation.
print(err.kind, err.message)
assert(err.kind == "Timeout")
print("timeouts: ok")
