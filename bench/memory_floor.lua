-- bench/memory_floor.lua: the floor under the memory workload. 100,000 bare
-- coroutines parked in the shape of a parked task, held in a list like the
-- workload's tasks, with no Task objects, timers or anchors; prints bytes of
-- RSS per coroutine, as bench/lasync/memory.lua does per task.
--   build/lasync bench/memory_floor.lua [3|2]     -- lasync's allocator
--   lua5.4 bench/memory_floor.lua [3|2]           -- stock Lua, malloc
-- Shape 3 (the default) is a task's: a protected body (pcall), the task's
-- function, the C function that yields. Shape 2 has no protected body: the
-- function and coroutine.yield, "a parked Lua coroutine" of the issue.
local N = 100000
local shape = arg and arg[1] or "3"

local function status_kb(key)
  for line in io.lines("/proc/self/status") do
    local v = line:match("^" .. key .. ":%s*(%d+)")
    if v then return tonumber(v) end
  end
end

local function body() coroutine.yield() end

collectgarbage(); collectgarbage()
local base = status_kb("VmRSS")
local cos = {}
for i = 1, N do
  local co
  if shape == "3" then
    co = coroutine.create(pcall)
    assert(coroutine.resume(co, body))
  else
    co = coroutine.create(body)
    assert(coroutine.resume(co))
  end
  cos[i] = co
end
collectgarbage(); collectgarbage()
for i = 1, N do assert(coroutine.status(cos[i]) == "suspended") end
print(("ok frames=%s bytes_per_coroutine=%.0f"):format(shape, (status_kb("VmRSS") - base) * 1024 / N))
