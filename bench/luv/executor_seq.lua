-- executor_seq: 20,000 trivial jobs one after another on libuv's thread
-- pool (luv's uv.new_work: a Lua state per pool thread), the job resuming
-- the waiting coroutine from its after-work callback.
local uv = require "luv"
local N = 20000
local main, result
local work = uv.new_work(function(i) return i + 1 end,
                         function(r) result = r; assert(coroutine.resume(main)) end)
main = coroutine.create(function()
  work:queue(0)
  coroutine.yield()
  local t0 = uv.hrtime()
  local sum = 0
  for i = 1, N do
    work:queue(i)
    coroutine.yield()
    sum = sum + result
  end
  local t = (uv.hrtime() - t0) / 1e9
  if sum ~= N * (N + 1) // 2 + N then
    io.stderr:write(("executor_seq: sum=%d\n"):format(sum))
    os.exit(1)
  end
  print(("ok sum=%d rate=%.0f t=%.4f"):format(sum, N / t, t))
end)
assert(coroutine.resume(main))
uv.run()
