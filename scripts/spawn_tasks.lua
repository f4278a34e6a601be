-- spawn_tasks.lua: start tasks, do other work, then collect them.
-- asyncio: create_task(coro, name=...), task.get_name(), task.done(),
-- await task, task.add_done_callback(...).
local async = require "async"

local function process_item(item, delay)
  print(("  %s started"):format(item))
  async.sleep(delay)
  print(("  %s finished"):format(item))
  return "processed " .. item
end

-- spawn queues the task; it first runs when the spawner waits.
local a = async.spawn(process_item, "A", 0.06)
local b = async.spawn(process_item, "B", 0.02)
local c = async.spawn(process_item, "C", 0.04)
a:set_name("worker-A")                   -- set_name returns the task
print(("%s is %s, done: %s"):format(a:name(), a:state(), tostring(a:done())))
assert(a:state() == "ready" and not a:done())

-- Done callbacks run from the loop once the task ends, in the order they
-- were added; they receive the task. Here they record the finishing order.
local finished = {}
for _, t in ipairs{a, b, c} do
  t:add_done_callback(function(task) finished[#finished + 1] = task:name() end)
end

print("main: doing other work")
async.sleep(0.01)
print(("%s is %s"):format(a:name(), a:state()))   -- sleeping in the loop
assert(a:state() == "waiting")

-- Awaiting in any order is fine: a task that already ended hands back its
-- results at once.
local ra, rb, rc = a:await(), b:await(), c:await()
print(ra, rb, rc)
assert(ra == "processed A" and rb == "processed B" and rc == "processed C")
async.sleep(0)                           -- let the last done callbacks run
print("finishing order: " .. table.concat(finished, ", "))
assert(table.concat(finished, ",") == b:name() .. "," .. c:name() .. ",worker-A")

-- After the end: state, result (results or the error raised again), error.
print(tostring(a), a:state(), a:result(), a:error())
assert(a:state() == "done" and a:result() == "processed A" and a:error() == nil)

local failing = async.spawn(function() async.sleep(0.01) error("no such item", 0) end)
failing:set_name("failing")
local ok, err = pcall(failing.await, failing)
print(tostring(failing), "error:", failing:error())
assert(not ok and err == "no such item")
assert(failing:state() == "failed" and failing:error() == "no such item")

-- async.current() is the running task; in a script's body, the main task.
local me = async.current()
local child_sees = async.spawn(function() return async.current() end):await()
print("main task: " .. me:name() .. ", a child saw itself as " .. child_sees:name())
assert(child_sees ~= me)

-- A task spawned and forgotten still runs to its end: the scheduler holds
-- every live task (asyncio keeps only weak references to them).
-- (We wait for its word, a future, not for a longer sleep: a loaded machine
-- can start the 10 ms sleep more than 10 ms into our 20 ms one.)
local ran = async.future()
async.spawn(function() async.sleep(0.01) ran:resolve("forgotten task ran") end)
collectgarbage()                         -- no reference to the task is kept
local said = ran:await()
assert(said == "forgotten task ran")
print(said)
print("spawn_tasks: ok")
