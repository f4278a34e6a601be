-- blocking_off_loop.lua: a blocking call (a synchronous library, a slow
-- command) stops every task when it runs on the loop thread; async.to_thread
-- runs it on a worker thread and the loop goes on.
-- asyncio: await asyncio.to_thread(blocking_fn, ...).
local async = require "async"

-- A blocking call: reads the whole output of a command that takes a while.
local function slow_command(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return out
end

local ticks = 0
local ticker = async.spawn(function()
  while true do
    async.sleep(0.01)
    ticks = ticks + 1
  end
end)
async.sleep(0.03)                        -- the ticker is going

-- On the loop thread: nothing else runs until the call returns.
local before = ticks
local out = slow_command("sleep 0.3; echo on the loop")
local blocked_ticks = ticks - before
print(("%s: ticks meanwhile: %d"):format(out:gsub("\n", ""), blocked_ticks))

-- On a worker thread: the ticker keeps ticking while the task waits.
before = ticks
out = async.to_thread(slow_command, "sleep 0.3; echo in a thread")
local free_ticks = ticks - before
print(("%s: ticks meanwhile: %d"):format(out:gsub("\n", ""), free_ticks))

ticker:cancel()
assert(blocked_ticks == 0, "the loop thread was blocked, so the ticker could not tick")
assert(free_ticks >= 3, "the ticker should have ticked while the call ran in a thread")
