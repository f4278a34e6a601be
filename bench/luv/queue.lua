-- queue: 1 producer, 4 consumers, a queue bounded at 100, 500,000 integers.
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local async = require "sched"
async.run(function()
  local N, CONSUMERS, MAXSIZE = 500000, 4, 100

  local q = async.queue(MAXSIZE)
  local count = 0

  local function producer()
    for i = 0, N - 1 do q:put(i) end
    q:close()
    return 0
  end

  local function consumer()
    local sum = 0
    for v in q:iter() do
      sum = sum + v
      count = count + 1
    end
    return sum
  end

  local t0 = async.time()
  local tasks = {}
  for i = 1, CONSUMERS do tasks[i] = async.spawn(consumer) end
  tasks[CONSUMERS + 1] = async.spawn(producer)
  local res = async.gather(tasks)
  local total = 0
  for i = 1, CONSUMERS do total = total + res[i] end
  if count ~= N or total ~= N * (N - 1) // 2 then
    io.stderr:write(("queue: count=%d total=%d, want %d %d\n"):format(count, total, N, N * (N - 1) // 2))
    os.exit(1)
  end
  print(("ok total=%d t=%.4f"):format(total, async.time() - t0))
end)
