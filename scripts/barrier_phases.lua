-- barrier_phases.lua: workers compute a 1-D heat diffusion in lock-step phases.
-- asyncio: asyncio.Barrier(n); each phase needs every worker's previous results.
local async = require "async"

-- The rod is split among 4 workers. In each step a cell becomes the average of
-- itself and its neighbours *from the previous step*, so no worker may start
-- step k+1 before all have finished step k: a barrier separates the steps.
local CELLS, WORKERS, STEPS = 40, 4, 25
local function initial()
  local rod = {}
  for i = 1, CELLS do rod[i] = (i == CELLS // 2) and 1000.0 or 0.0 end
  return rod
end

local function new_value(rod, i)
  local left, right = rod[i - 1] or rod[i], rod[i + 1] or rod[i]
  return (left + rod[i] + right) / 3
end

-- The reference: the same computation, one step at a time, in one task.
local expected = initial()
for _ = 1, STEPS do
  local nxt = {}
  for i = 1, CELLS do nxt[i] = new_value(expected, i) end
  expected = nxt
end

-- Two buffers: step k reads buffers[k % 2] and writes the other one.
local buffers = {initial(), {}}
local barrier = async.barrier(WORKERS)
local last_arrivals = {}

local function worker(w)
  local first = (w - 1) * (CELLS // WORKERS) + 1
  local last = w * (CELLS // WORKERS)
  for step = 1, STEPS do
    local src, dst = buffers[(step - 1) % 2 + 1], buffers[step % 2 + 1]
    for i = first, last do
      dst[i] = new_value(src, i)
      if i % 3 == 0 then async.sleep(0) end  -- workers interleave mid-phase
    end
    -- wait() returns the arrival order (1..WORKERS); the last to arrive
    -- releases the others and does not wait
    if barrier:wait() == WORKERS then last_arrivals[step] = w end
  end
end

local tasks = {}
for w = 1, WORKERS do tasks[w] = async.spawn(worker, w) end
async.gather(tasks)

local result = buffers[STEPS % 2 + 1]
local sum, worst = 0, 0
for i = 1, CELLS do
  sum = sum + result[i]
  worst = math.max(worst, math.abs(result[i] - expected[i]))
end
print(("%d steps by %d workers: total heat %.3f, max difference from the serial run %g")
      :format(STEPS, WORKERS, sum, worst))
assert(worst == 0, "the phased computation matches the serial one exactly")
assert(#last_arrivals == STEPS, "every phase had one last arrival")

-- A worker that is cancelled mid-phase breaks the barrier for the others,
-- which get a BrokenBarrier error instead of waiting forever.
local b = async.barrier(3)
local waiting = async.spawn(function() return b:wait() end)
local doomed = async.spawn(function() return b:wait() end)
async.sleep(0)
doomed:cancel()
local ok, err = pcall(waiting.await, waiting)
print("the other worker got: " .. tostring(err))
assert(not ok and getmetatable(err) == async.BrokenBarrier and b:broken())
b:reset()
assert(not b:broken())
print("barrier_phases: ok")
