-- tests/test_executor_map.lua: regressions of issue 13 item 6 in
-- executor:map: jobs are fed lazily, a bounded window of them in flight,
-- so memory stays flat in the number of items and the map can be cancelled
-- or timed out while it runs. Counted (jobs in flight, Lua memory), not timed.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"

require("async.executor").default()     -- lives as long as the host

TestExecutorMap = support.suite({}, 30)

-- Runs fn while a watcher samples ex's jobs not yet returned and the Lua
-- heap (KB) at every turn of the loop; returns fn's success, its result or
-- error, the peak of jobs in flight and the peak heap growth.
local function watched(ex, fn)
  local done, peak, base, grew = false, 0, collectgarbage("count"), 0
  local watcher = async.spawn(function()
    while not done do
      peak = math.max(peak, ex:stats().pending)
      grew = math.max(grew, collectgarbage("count") - base)
      async.sleep(0)
    end
  end)
  local ok, res = pcall(fn)
  done = true
  watcher:await()
  return ok, res, peak, grew
end

-- map(fn, {n = 1e8}) submitted every job before awaiting the first (13 GB,
-- never returned; with 1e6 items the loop blocked ~2 s, so no timeout could
-- fire). Root cause: the loop that built the futures ran to the end before
-- the first await. Now at most 4 jobs per worker are in flight.
function TestExecutorMap:test_map_submitted_every_job_at_once()
  local ex <close> = async.executor{workers = 2}
  local ok, r, peak = watched(ex, function() return ex:map(function() end, {n = 2000}) end)
  lu.assertTrue(ok, tostring(r))
  lu.assertEquals(r.n, 2000)
  lu.assertTrue(peak > 0)
  lu.assertTrue(peak <= 4 * 2, "jobs in flight at once: " .. peak)
  -- chunks count as jobs: 2000 items in chunks of 7 is 286 jobs, 8 at once
  local ok2, r2, peak2 = watched(ex, function()
    return ex:map(function(x) return x end, {n = 2000, 5}, {chunksize = 7})
  end)
  lu.assertTrue(ok2, tostring(r2))
  lu.assertEquals(r2.n, 2000)
  lu.assertEquals(r2[1], 5)
  lu.assertTrue(peak2 <= 4 * 2, "chunks in flight at once: " .. peak2)
  -- results keep their order with the window moving
  local list = {}
  for i = 1, 500 do list[i] = i end
  local sq = ex:map(function(x) return x * x end, list)
  for i = 1, 500 do lu.assertEquals(sq[i], i * i) end
end

-- The same map over n = 1e8 can be stopped while it runs: by a timeout, or
-- by cancelling its task; the Lua heap does not grow with the jobs done,
-- and the executor is free afterwards. (Runs only once the window holds,
-- above: without it this would try to allocate gigabytes.)
function TestExecutorMap:test_huge_map_can_be_timed_out_and_cancelled()
  local ex <close> = async.executor{workers = 2}
  local _, _, peak = watched(ex, function() return ex:map(function() end, {n = 100}) end)
  lu.assertTrue(peak <= 8, "the window does not hold; not trying n = 1e8")
  local ok, err, peak2, grew = watched(ex, function()
    return ex:map(function() end, {n = 1e8}, {timeout = 0.2})
  end)
  lu.assertFalse(ok)
  lu.assertTrue(async.is_timeout(err), tostring(err))
  lu.assertTrue(peak2 <= 8, "jobs in flight at once: " .. peak2)
  lu.assertTrue(grew < 8 * 1024, ("the heap grew by %.0f KB"):format(grew))
  -- cancelled by its task's cancellation, once jobs have come back
  local t = async.spawn(ex.map, ex, function() end, {n = 1e8})
  while ex:stats().pending == 0 do async.sleep(0) end
  for _ = 1, 50 do async.sleep(0) end
  t:cancel()
  lu.assertTrue(async.is_cancelled(select(2, pcall(t.await, t))))
  lu.assertEquals(ex:run(function() return "free" end), "free")
  lu.assertErrorMsgContains("list.n must be a count", ex.map, ex, print, {n = -1})
  lu.assertErrorMsgContains("list.n must be a count", ex.map, ex, print, {n = 1.5})
end

support.run(...)
