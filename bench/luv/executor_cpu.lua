-- executor_cpu: 8 CPU-bound jobs (a pure-Lua numeric loop) one after
-- another, then on libuv's thread pool (luv's uv.new_work; the pool has 4
-- threads, the machine's cores bound the speed-up).
local uv = require "luv"
local JOBS, N = 8, 10000000

local function work(n)
  local s = 0
  for i = 1, n do s = (s * 31 + i) % 1000000007 end
  return s
end

local t0 = uv.hrtime()
local want = {}
for j = 1, JOBS do want[j] = work(N + j) end
local seq = (uv.hrtime() - t0) / 1e9

local got, count = {}, 0
local job = uv.new_work(function(j, n)
  local s = 0
  for i = 1, n do s = (s * 31 + i) % 1000000007 end
  return j, s
end, function(j, s) got[j], count = s, count + 1 end)
t0 = uv.hrtime()
for j = 1, JOBS do job:queue(j, N + j) end
uv.run()
local t = (uv.hrtime() - t0) / 1e9
for j = 1, JOBS do
  if got[j] ~= want[j] then
    io.stderr:write(("executor_cpu: job %d gave %s, want %s\n"):format(j, got[j], want[j]))
    os.exit(1)
  end
end
print(("ok check=%d seq=%.4f speedup=%.2f t=%.4f"):format(want[JOBS], seq, seq / t, t))
