-- executor_cpu: 8 CPU-bound jobs (a pure-Lua numeric loop) run one after
-- another on the loop thread, then on a pool of 2 threads; t is the pool's
-- time, speedup the ratio of the two.
local async = require "async"
local JOBS, N = 8, 10000000

local function work(n)
  local s = 0
  for i = 1, n do s = (s * 31 + i) % 1000000007 end
  return s
end

local t0 = async.time()
local want = {}
for j = 1, JOBS do want[j] = work(N + j) end
local seq = async.time() - t0

local ex = async.executor{workers = 2}
ex:map(work, {100000, 100000})            -- both threads up before timing
local list = {}
for j = 1, JOBS do list[j] = N + j end
t0 = async.time()
local got = ex:map(work, list)
local t = async.time() - t0
ex:close()
for j = 1, JOBS do
  if got[j] ~= want[j] then
    io.stderr:write(("executor_cpu: job %d gave %s, want %s\n"):format(j, got[j], want[j]))
    os.exit(1)
  end
end
print(("ok check=%d seq=%.4f speedup=%.2f t=%.4f"):format(want[JOBS], seq, seq / t, t))
