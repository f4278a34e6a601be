-- tests/jitter.lua: runs a test file (or script) with timers armed late, to
-- expose tests that order events by sleeping different short durations.
--   JITTER_MS=4 build/lasync tests/jitter.lua tests/test_gather.lua -o tap
-- Before each real-time async.sleep(d > 0) or async.call_later(d > 0) it
-- busy-waits a random 0..JITTER_MS ms, as a process preempted on a loaded
-- machine would; with JITTER_HOOK=1 it also stalls at random points of any
-- Lua code. Order semantics are untouched; only timing moves, so a test
-- that fails here depends on luck. (Known noise: tests that name the line
-- a task waits at see this file's line instead.) JITTER_SEED repeats a run.
local J = tonumber(os.getenv("JITTER_MS") or "4") / 1000
local seed = tonumber(os.getenv("JITTER_SEED") or "") or os.time() + math.floor(os.clock() * 1e6)
math.randomseed(seed)

local function stall()
  local d = math.random() * J
  local t0, c0 = async.time(), os.clock()
  -- async.time stands still on the virtual clock: os.clock bounds the spin
  while async.time() - t0 < d and os.clock() - c0 < d do end
end

local sleep, later = async.sleep, async.call_later
async.sleep = function(d, ...)
  if type(d) == "number" and d > 0 then stall() end
  return sleep(d, ...)
end
async.call_later = function(d, ...)
  if type(d) == "number" and d > 0 then stall() end
  return later(d, ...)
end
if os.getenv("JITTER_HOOK") then
  debug.sethook(function() if math.random() < 0.02 then stall() end end, "", 500)
end

local file = table.remove(arg, 1) or error("usage: lasync tests/jitter.lua FILE [args]", 0)
local chunk = assert(loadfile(file))
return chunk(table.unpack(arg))
