-- cpu_parallel.lua: CPU-bound Lua split over every core. Each worker thread
-- has a Lua state of its own, so pure Lua runs truly in parallel (Python
-- needs processes for this: ProcessPoolExecutor).
-- asyncio: loop.run_in_executor(ProcessPoolExecutor(), fn, ...), executor.map.
local async = require "async"

-- Counts the primes in [lo, hi]. It runs on a worker, so it may use no
-- upvalue but _ENV (globals like math): everything else is an argument.
local function count_primes(range)
  local lo, hi, n = range[1], range[2], 0
  for k = math.max(lo, 2), hi do
    local prime = true
    for d = 2, math.floor(math.sqrt(k)) do
      if k % d == 0 then prime = false break end
    end
    if prime then n = n + 1 end
  end
  return n
end

local LIMIT, PARTS = 600000, 16
local ranges = {}
for i = 1, PARTS do
  ranges[i] = {(i - 1) * LIMIT // PARTS + 1, i * LIMIT // PARTS}
end

-- One after another, on the loop thread (nothing else could run meanwhile).
local t0 = async.time()
local sequential = 0
for i = 1, PARTS do sequential = sequential + count_primes(ranges[i]) end
local t_seq = async.time() - t0

-- The same parts on an executor with one worker per core; map keeps order.
local ex <close> = async.executor{}           -- workers = the number of cores
local workers = ex:stats().workers
t0 = async.time()
local counts = ex:map(count_primes, ranges)
local t_par = async.time() - t0
local parallel = 0
for i = 1, PARTS do parallel = parallel + counts[i] end

print(("primes below %d: %d"):format(LIMIT, parallel))
print(("sequential %.3f s, %d workers %.3f s: speed-up %.2fx"):format(
  t_seq, workers, t_par, t_seq / t_par))
assert(parallel == sequential, "the parallel count differs from the sequential one")
assert(parallel == 49098, "there are 49098 primes below 600000")
