-- memory: 100,000 tasks all parked in sleep(1); resident memory per parked task.
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local async = require "sched"
async.run(function()
  local N = 100000

  local function status_kb(key)
    for line in io.lines("/proc/self/status") do
      local v = line:match("^" .. key .. ":%s*(%d+)")
      if v then return tonumber(v) end
    end
  end

  local parked, woke = 0, 0
  local function sleeper()
    parked = parked + 1
    async.sleep(1)
    woke = woke + 1
  end

  collectgarbage()
  local base = status_kb("VmRSS")
  local t0 = async.time()
  local tasks = {}
  for i = 1, N do tasks[i] = async.spawn(sleeper) end
  while parked < N do async.sleep(0) end
  collectgarbage()
  local rss, hwm = status_kb("VmRSS"), status_kb("VmHWM")
  if woke ~= 0 then
    io.stderr:write(("memory: %d tasks woke before all were parked (spawning took %.2fs)\n"):format(woke, async.time() - t0))
    os.exit(1)
  end
  async.gather(tasks)
  if woke ~= N then io.stderr:write(("memory: %d of %d woke\n"):format(woke, N)); os.exit(1) end
  print(("ok base_kb=%d rss_kb=%d hwm_kb=%d bytes_per_task=%.0f"):format(base, rss, hwm, (rss - base) * 1024 / N))
end)
