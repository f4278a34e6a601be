-- executor_many: 100,000 small jobs submitted at once to a pool of 2
-- threads, then all awaited. Measures throughput of the job hand-off.
local async = require "async"
local N = 100000

local ex = async.executor{workers = 2}
local function job(i) return i * 2 end
ex:run(job, 0)

local t0 = async.time()
local futures = {}
for i = 1, N do futures[i] = ex:submit(job, i) end
local sum = 0
for i = 1, N do sum = sum + futures[i]:await() end
local t = async.time() - t0
if sum ~= N * (N + 1) then
  io.stderr:write(("executor_many: sum=%d, want %d\n"):format(sum, N * (N + 1)))
  os.exit(1)
end
ex:close()
print(("ok sum=%d rate=%.0f t=%.4f"):format(sum, N / t, t))
