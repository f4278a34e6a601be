-- spawn: 200,000 tasks that each yield once with sleep(0) and return i; gather all.
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local async = require "sched"
async.run(function()
  local N = 200000

  local function task(i)
    async.sleep(0)
    return i
  end

  local t0 = async.time()
  local tasks = {}
  for i = 1, N do tasks[i] = async.spawn(task, i - 1) end
  local res = async.gather(tasks)
  local sum = 0
  for i = 1, res.n do sum = sum + res[i] end
  if res.n ~= N or sum ~= N * (N - 1) // 2 then
    io.stderr:write(("spawn: n=%d sum=%d, want n=%d sum=%d\n"):format(res.n, sum, N, N * (N - 1) // 2))
    os.exit(1)
  end
  print(("ok sum=%d t=%.4f"):format(sum, async.time() - t0))
end)
