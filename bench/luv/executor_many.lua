-- executor_many: 100,000 small jobs queued at once on libuv's thread pool
-- (luv's uv.new_work), all collected by their after-work callbacks.
local uv = require "luv"
local N = 100000
local sum, count, t0 = 0, 0, nil
local work = uv.new_work(function(i) return i * 2 end, function(r)
  sum, count = sum + r, count + 1
  if count == N then
    local t = (uv.hrtime() - t0) / 1e9
    if sum ~= N * (N + 1) then
      io.stderr:write(("executor_many: sum=%d\n"):format(sum))
      os.exit(1)
    end
    print(("ok sum=%d rate=%.0f t=%.4f"):format(sum, N / t, t))
  end
end)
t0 = uv.hrtime()
for i = 1, N do work:queue(i) end
uv.run()
if count ~= N then io.stderr:write("executor_many: not all jobs came back\n") os.exit(1) end
