-- timers: 100,000 tasks each sleeping a pseudo-random 0..50 ms (the LCG shared by every
-- peer); each checks with the monotonic clock that it did not wake before its delay.
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local async = require "sched"
async.run(function()
  local N = 100000

  local early, max_early = 0, 0.0
  local function sleeper(ms)
    local delay = ms / 1000
    local t0 = async.time()
    async.sleep(delay)
    local short = delay - (async.time() - t0)
    if short > 0 then
      early = early + 1
      if short > max_early then max_early = short end
    end
    return ms
  end

  local t0 = async.time()
  local tasks, x, dsum = {}, 42, 0
  for i = 1, N do
    x = (x * 1103515245 + 12345) & 0x7fffffff
    local ms = x % 51
    dsum = dsum + ms
    tasks[i] = async.spawn(sleeper, ms)
  end
  local res = async.gather(tasks)
  local got = 0
  for i = 1, res.n do got = got + res[i] end
  local line = ("early=%d max_early_us=%.1f dsum=%d t=%.4f"):format(early, max_early * 1e6, dsum, async.time() - t0)
  if got ~= dsum then  -- early wakes are reported, not failed, for a peer
    io.stderr:write(("timers: lost results: got=%d %s\n"):format(got, line))
    os.exit(1)
  end
  print("ok " .. line)
end)
