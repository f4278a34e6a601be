-- scripts/runaway.lua: stopping code that never waits (docs/cli.md, SIGINT).
-- A loop that never waits never gives the loop back, yet it can be stopped:
-- cancelling a thread interrupts the code it runs, Ctrl-C (SIGINT) raises
-- async.Cancelled in the code the main task runs, and os.exit in a worker
-- raises instead of ending the process behind everyone's back.
local async = require "async"

-- 1. A thread that spins forever ends when it is cancelled.
local spinner = async.thread.spawn(function(ch) ch:send("spinning") while true do end end)
assert(spinner:recv() == "spinning")
spinner:cancel()
local ok, err = pcall(spinner.join, spinner)
assert(not ok and async.is_cancelled(err), tostring(err))
print("thread stopped: " .. tostring(err))

-- 2. SIGINT reaches the main task while it spins: a helper thread sends it
-- once told to; the main task catches the Cancelled and goes on.
-- (ThreadSanitizer holds a signal back until the thread calls into
-- instrumented code, which this loop never does: skipped under it.)
local tsan = io.open("/proc/self/maps"):read("a"):find("libtsan")
local helper = async.thread.spawn(function(ch, pid)
  if ch:recv() then                      -- nil: closed, not wanted
    require("async").signal.kill(pid, "SIGINT")  -- (the thread's own async)
  end
end, async.signal.getpid())
if not tsan then
  ok, err = pcall(function()
    helper:send("go")
    while true do end                    -- never waits
  end)
  assert(not ok and async.is_cancelled(err), tostring(err))
  print("main task interrupted: " .. tostring(err))
end
helper:close()
helper:join()

-- 3. os.exit in a job on a worker thread raises in the caller.
ok, err = pcall(async.to_thread, function() os.exit(1) end)
assert(not ok and err:find("os.exit is not allowed", 1, true), err)
print("runaway.lua: ok")
