-- executor_seq: 20,000 trivial jobs one after another on a pool of 2
-- threads: submit, await the result, repeat. Measures a round trip.
local async = require "async"
local N = 20000

local ex = async.executor{workers = 2}
local function job(i) return i + 1 end
ex:run(job, 0)                            -- a thread started, the function loaded

local t0 = async.time()
local sum = 0
for i = 1, N do sum = sum + ex:run(job, i) end
local t = async.time() - t0
if sum ~= N * (N + 1) // 2 + N then
  io.stderr:write(("executor_seq: sum=%d, want %d\n"):format(sum, N * (N + 1) // 2 + N))
  os.exit(1)
end
ex:close()
print(("ok sum=%d rate=%.0f t=%.4f"):format(sum, N / t, t))
