-- scope.lua: a task group (nursery). Children cannot outlive the scope, and
-- one child's failure cancels its siblings.
-- asyncio: `async with asyncio.TaskGroup() as tg: tg.create_task(...)`.
local async = require "async"

local function fetch(name, delay, fail)
  async.sleep(delay)
  if fail then error(name .. " failed", 0) end
  return name .. " data"
end

-- scope(fn, ...) runs fn(group, ...) in the current task, then waits for
-- every child spawned with group:spawn. It returns fn's results.
local tasks
local count = async.scope(function(group)
  tasks = {
    group:spawn(fetch, "users", 0.03),
    group:spawn(fetch, "orders", 0.01),
    group:spawn(fetch, "prices", 0.02),
  }
  return #tasks                          -- the children are still running here
end)
-- Past the scope, every child is done: read results without waiting.
print(("%d children: %s, %s, %s"):format(
  count, tasks[1]:result(), tasks[2]:result(), tasks[3]:result()))
assert(count == 3 and tasks[1]:result() == "users data" and tasks[3]:result() == "prices data")

-- A failing child cancels its siblings and the body; the scope waits for
-- their cleanup, then raises the child's error.
local log = {}
local function careful(name)
  local ok, err = pcall(async.sleep, 5)
  log[#log + 1] = name .. " saw " .. tostring(err)
  error(err, 0)
end
local ok, err = pcall(async.scope, function(group)
  group:spawn(careful, "sibling-1")
  group:spawn(careful, "sibling-2")
  group:spawn(fetch, "inventory", 0.02, true)
  careful("body")
end)
table.sort(log)
print("scope raised: " .. tostring(err))
for _, line in ipairs(log) do print("  " .. line) end
assert(not ok and err == "inventory failed")
assert(#log == 3 and log[1]:find("^body saw Cancelled"))

-- group:cancel() stops the whole group (children and body) and the scope
-- returns normally: a search that is over once anyone finds the answer.
local found
local result = async.scope(function(group)
  for shard = 1, 5 do
    group:spawn(function()
      async.sleep(0.01 * shard)
      if shard == 3 then
        found = "answer in shard 3"
        group:cancel()
      end
    end)
  end
  async.sleep(5)                         -- cancelled too
  return "not reached"
end)
print("search: " .. tostring(found) .. ", scope returned " .. tostring(result))
assert(found == "answer in shard 3" and result == nil)

-- Cancelling the task that runs the scope cancels the children as well.
local children
local outer = async.spawn(function()
  async.scope(function(group)
    children = {group:spawn(async.sleep, 5), group:spawn(async.sleep, 5)}
    async.sleep(5)
  end)
end)
async.sleep(0.01)
outer:cancel("shutdown")
ok, err = pcall(outer.await, outer)
print(("outer %s; children %s and %s"):format(
  outer:state(), children[1]:state(), children[2]:state()))
assert(outer:cancelled() and children[1]:cancelled() and children[2]:cancelled())

-- A deadline around a scope cancels everything inside it.
ok, err = pcall(async.timeout, 0.02, async.scope, function(group)
  group:spawn(async.sleep, 5)
  group:spawn(async.sleep, 5)
end)
print("with a deadline: " .. tostring(err))
assert(async.is_timeout(err))

-- Once the scope has ended, spawning into it is an error.
local saved
async.scope(function(group) saved = group end)
ok, err = pcall(saved.spawn, saved, print)
assert(not ok and err:find("ended"))
print("scope: ok")
