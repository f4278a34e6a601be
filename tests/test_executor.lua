-- tests/test_executor.lua: async.to_thread and executors: values crossing
-- between states, errors, map, cancellation (queued and running), pool
-- shutdown, and no growth over many jobs.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"

-- /proc/self/status: Threads (the entries of /proc/self/task), VmRSS (KB).
local function status(key)
  for line in io.lines("/proc/self/status") do
    local v = line:match("^" .. key .. ":%s*(%d+)")
    if v then return tonumber(v) end
  end
end

-- Each test uses executors of its own and closes them, so a leaked
-- thread shows as a count that does not come back.
local function threads() return status("Threads") end

-- The process's thread count once it has come down to n (at most 5 s):
-- pthread_join returns when the thread has left its code, but the kernel
-- drops it from the count a moment later, at its reaping, which a loaded
-- machine delays (one test once saw n + 1 just after close).
local function threads_after_join(n)
  pcall(async.timeout, 5, function()
    while threads() ~= n do async.sleep(0.001) end
  end)
  return threads()
end
local function rss_kb() return status("VmRSS") end

local function echo(...) return ... end
local executor = require "async.executor"
-- The default executor (to_thread's) lives as long as the host, and its
-- handle with it: make it now, so that no test counts it as a leak.
executor.default()

-- Waits until n jobs of ex are running (a worker has taken them).
local function until_running(ex, n)
  while ex:stats().running < n do async.sleep(0.001) end
end

TestCrossing = support.suite {}

function TestCrossing:test_scalars_both_ways()
  local s = "a\0b\0\0c" .. string.rep("\255", 3)
  local r = table.pack(async.to_thread(function(...)
    local t = table.pack(...)
    local kinds = {}
    for i = 1, t.n do kinds[i] = math.type(t[i]) or type(t[i]) end
    return table.concat(kinds, ","), ...
  end, nil, true, false, 0, -7, math.maxinteger, math.mininteger, 1.0, 0.5, -0.0,
     1/0, -1/0, s, "", nil))
  lu.assertEquals(r.n, 16)
  lu.assertEquals(r[1], "nil,boolean,boolean,integer,integer,integer,integer,float,float,float," ..
                        "float,float,string,string,nil")
  lu.assertNil(r[2])
  lu.assertIsTrue(r[3])
  lu.assertIsFalse(r[4])
  lu.assertEquals(math.type(r[5]), "integer")
  lu.assertEquals(r[6], -7)
  lu.assertEquals(r[7], math.maxinteger)
  lu.assertEquals(r[8], math.mininteger)
  lu.assertEquals(math.type(r[9]), "float")
  lu.assertEquals(r[9], 1.0)
  lu.assertEquals(r[10], 0.5)
  lu.assertEquals(1 / r[11], -1 / 0)     -- negative zero kept
  lu.assertEquals(r[12], 1 / 0)
  lu.assertEquals(r[13], -1 / 0)
  lu.assertEquals(r[14], s)
  lu.assertEquals(#r[14], 9)
  lu.assertEquals(r[15], "")
  lu.assertNil(r[16])
end

function TestCrossing:test_nan_and_counts_of_nils()
  local r = table.pack(async.to_thread(function(x) return x ~= x, nil, nil end, 0 / 0))
  lu.assertEquals(r.n, 3)
  lu.assertIsTrue(r[1])
  lu.assertEquals(select("#", async.to_thread(function() end)), 0)
end

function TestCrossing:test_nested_shared_and_cyclic_tables()
  local shared = {v = "shared"}
  local t = {list = {1, 2.5, "three", {4}}, a = shared, b = shared, [true] = "yes",
             [1.5] = "float key", [shared] = "table key"}
  t.self = t
  t.list[5] = t
  local r, checks = async.to_thread(function(x)
    return x, {x.a == x.b, x.self == x, x.list[5] == x, x[x.a] == "table key",
               math.type(x.list[1]), math.type(x.list[2])}
  end, t)
  lu.assertEquals(checks, {true, true, true, true, "integer", "float"})
  lu.assertNotIs(r, t)
  lu.assertIs(r.a, r.b)
  lu.assertIs(r.self, r)
  lu.assertIs(r.list[5], r)
  lu.assertEquals(r.a.v, "shared")
  lu.assertEquals(r[r.a], "table key")
  lu.assertEquals(r[true], "yes")
  lu.assertEquals(r[1.5], "float key")
  lu.assertEquals(r.list[3], "three")
  lu.assertEquals(r.list[4][1], 4)
end

function TestCrossing:test_big_values()
  local big, list = string.rep("x", 1 << 20), {}
  for i = 1, 10000 do list[i] = i * 2 end
  local s, l = async.to_thread(echo, big, list)
  lu.assertEquals(#s, 1 << 20)
  lu.assertEquals(#l, 10000)
  lu.assertEquals(l[10000], 20000)
end

function TestCrossing:test_functions_cross_as_bytecode()
  local square = function(x) return x * x end
  local n, again = async.to_thread(function(f, x) return f(x), f end, square, 7)
  lu.assertEquals(n, 49)
  lu.assertEquals(again(5), 25)          -- and back
  -- _ENV is the receiving state's globals
  WORKER_TEST_GLOBAL = "caller"
  lu.assertEquals(async.to_thread(function() return WORKER_TEST_GLOBAL end), nil)
  WORKER_TEST_GLOBAL = nil
end

function TestCrossing:test_worker_has_standard_libraries()
  lu.assertEquals(async.to_thread(function()
    return type(string.format) .. type(table.concat) .. type(math.sqrt) .. type(os.time) ..
           type(io.open) .. type(utf8.char) .. type(coroutine.wrap) .. type(debug.traceback) ..
           type(require)
  end), string.rep("function", 9))
end

local function crossing_error(fn, ...)
  local ok, err = pcall(fn, ...)
  lu.assertFalse(ok)
  return tostring(err)
end

function TestCrossing:test_unsupported_values_are_named()
  local f = function() end
  lu.assertStrContains(crossing_error(async.to_thread, f, 1, {conn = io.stdout}),
                       "to_thread: args[2].conn: userdata cannot cross to a thread")
  lu.assertStrContains(crossing_error(async.to_thread, f, {{}, {["a key"] = coroutine.create(f)}}),
                       'args[1][2]["a key"]: coroutine cannot cross to a thread')
  lu.assertStrContains(crossing_error(async.to_thread, f, {fn = print}),
                       "args[1].fn: C function cannot cross to a thread")
  lu.assertStrContains(crossing_error(async.to_thread, f, setmetatable({}, {})),
                       "args[1]: table with a metatable cannot cross to a thread")
  lu.assertStrContains(crossing_error(async.to_thread, f, {[io.stdout] = 1}),
                       "args[1]{key}: userdata cannot cross to a thread")
  local up = 1
  lu.assertStrContains(crossing_error(async.to_thread, f, {cb = function() return up end}),
                       "args[1].cb: function with upvalue 'up' cannot cross to a thread")
  lu.assertStrContains(crossing_error(async.to_thread, function() return up end),
                       "to_thread: fn: function with upvalue 'up' cannot cross to a thread")
  lu.assertStrContains(crossing_error(async.to_thread, print), "fn: C function cannot cross")
  lu.assertStrContains(crossing_error(async.to_thread, 42), "bad argument #1")
  lu.assertStrContains(crossing_error(async.to_thread, function() return io.stdout end),
                       "results[1]: userdata cannot cross from a thread")
  local deep = {}
  for _ = 1, 1001 do deep = {deep} end
  lu.assertStrContains(crossing_error(async.to_thread, f, deep), "nested over 1000 levels")
  lu.assertEquals(executor.default():stats().pending, 0)
end

TestErrors = support.suite {}

function TestErrors:test_error_value_reraised()
  local ok, err = pcall(async.to_thread, function() error("boom") end)
  lu.assertFalse(ok)
  lu.assertStrMatches(err, ".*test_executor.lua:%d+: boom")
  ok, err = pcall(async.to_thread, function() error({code = 7, why = {"nested"}}) end)
  lu.assertFalse(ok)
  lu.assertEquals(err, {code = 7, why = {"nested"}})
  ok, err = pcall(async.to_thread, function() error(setmetatable({}, {__tostring = function()
    return "custom error" end})) end)
  lu.assertFalse(ok)
  lu.assertEquals(err, "custom error")   -- cannot cross: its string form does
end

function TestErrors:test_worker_traceback_in_the_task()
  local t = async.spawn(function()
    return async.to_thread(function()
      local function deep_in_worker() error("worker failure") end
      deep_in_worker()
    end)
  end)
  lu.assertFalse(pcall(t.await, t))
  local tb = t:traceback()
  lu.assertStrContains(tb, "worker failure")
  lu.assertStrContains(tb, "re-raised from a worker thread")
  lu.assertStrContains(tb, "deep_in_worker")
end

function TestErrors:test_to_thread_outside_a_task()
  local done = async.future()
  async.call_soon(function() done:resolve(pcall(async.to_thread, echo, 1)) end)
  local ok, err = done:await()
  lu.assertFalse(ok)
  lu.assertStrContains(err, "to_thread: not inside a task")
  lu.assertEquals(executor.default():stats().pending, 0)
end

function TestErrors:test_bad_executor_options()
  lu.assertStrContains(crossing_error(async.executor, {workers = 0}), "workers must be 1 to")
  lu.assertStrContains(crossing_error(async.executor, {workers = 1.5}), "workers must be an integer")
  lu.assertStrContains(crossing_error(async.executor, {worker = 2}), "unknown option 'worker'")
  lu.assertStrContains(crossing_error(async.executor, 3), "table expected")
  lu.assertStrContains(crossing_error(executor.default().close,
                                      executor.default()), "cannot be closed")
end

TestExecutor = support.suite {}

function TestExecutor:test_run_submit_and_stats()
  local ex <close> = async.executor{workers = 2}
  lu.assertEquals(ex:stats().workers, 2)
  lu.assertEquals(ex:stats().threads, 2)     -- a CPU pool starts warm: min_workers = workers
  lu.assertEquals(ex:run(function(a, b) return a * b end, 6, 7), 42)
  local f = ex:submit(function(n) local s = 0 for i = 1, n do s = s + i end return s, "done" end, 100)
  lu.assertEquals({f:await()}, {5050, "done"})
  lu.assertTrue(f:done())
  local bad = ex:submit(function() error({code = "E"}) end)
  local ok, err = pcall(bad.await, bad)
  lu.assertFalse(ok)
  lu.assertEquals(err.code, "E")
  lu.assertStrContains(tostring(ex), "Executor<2 workers>")
end

function TestExecutor:test_function_loaded_once_per_worker()
  local ex <close> = async.executor{workers = 1}
  local function who() return tostring(debug.getinfo(1, "f").func) end
  local first = ex:run(who)
  for _ = 1, 5 do lu.assertEquals(ex:run(who), first) end
  lu.assertEquals(ex:submit(who):await(), first)
end

function TestExecutor:test_map_keeps_order()
  local ex <close> = async.executor{workers = 2}
  local list = {}
  for i = 1, 40 do list[i] = i end
  -- earlier items take longer, so they finish out of order
  local function work(i) local s = 0 for k = 1, (41 - i) * 2000 do s = s + k end return i * 10 end
  local r = ex:map(work, list)
  lu.assertEquals(r.n, 40)
  for i = 1, 40 do lu.assertEquals(r[i], i * 10) end
  r = ex:map(work, list, {chunksize = 7})
  for i = 1, 40 do lu.assertEquals(r[i], i * 10) end
  r = ex:map(function(x) if x == nil or x % 2 == 0 then return nil end return x end,
             {1, 2, 3, 4, n = 5})
  lu.assertEquals(r.n, 5)
  lu.assertEquals(r[1], 1)
  lu.assertNil(r[2])
  lu.assertEquals(r[3], 3)
  lu.assertEquals(ex:map(work, {}).n, 0)
  lu.assertStrContains(crossing_error(ex.map, ex, work, list, {chunksize = 0}), "chunksize")
  lu.assertStrContains(crossing_error(ex.map, ex, work, list, {size = 2}), "unknown option")
end

function TestExecutor:test_map_error_cancels_the_rest()
  local ex <close> = async.executor{workers = 1}
  local ok, err = pcall(ex.map, ex, function(i)
    if i == 1 then error("first fails") end
    while true do end                    -- the others would never end
  end, {1, 2, 3})
  lu.assertFalse(ok)
  lu.assertStrContains(err, "first fails")
  lu.assertEquals(ex:run(function() return "free again" end), "free again")
end

function TestExecutor:test_map_timeout()
  local ex <close> = async.executor{workers = 2}
  local ok, err = pcall(ex.map, ex, function() while true do end end, {1, 2, 3}, {timeout = 0.05})
  lu.assertFalse(ok)
  lu.assertTrue(async.is_timeout(err))
  lu.assertEquals(ex:run(echo, "after"), "after")
end

TestCancel = support.suite {}

-- A job that never ends, to occupy a worker until it is cancelled.
local function forever() while true do end end

function TestCancel:test_endless_loop_stopped_by_wait_for_and_worker_reused()
  local ex <close> = async.executor{workers = 1}
  local ok, err = pcall(async.wait_for, 0.05, function() return ex:run(forever) end)
  lu.assertFalse(ok)
  lu.assertTrue(async.is_timeout(err))
  lu.assertEquals(ex:run(function() return "reused" end), "reused")
  lu.assertEquals(ex:stats().threads, 1)
  -- the same with to_thread on the default executor
  ok, err = pcall(async.wait_for, 0.05, function() return async.to_thread(forever) end)
  lu.assertTrue(async.is_timeout(err))
  lu.assertEquals(async.to_thread(echo, 1), 1)
end

function TestCancel:test_pcall_in_the_job_cannot_swallow_the_cancel()
  local ex <close> = async.executor{workers = 1}
  local f = ex:submit(function()
    while true do pcall(function() while true do end end) end
  end)
  until_running(ex, 1)
  f:cancel()
  lu.assertEquals(ex:run(echo, "next"), "next")
end

function TestCancel:test_endless_loop_inside_a_coroutine()
  local ex <close> = async.executor{workers = 1}
  local jobs = {
    function() coroutine.wrap(function() while true do end end)() end,
    function() return coroutine.resume(coroutine.create(function() while true do end end)) end,
    function()                           -- nested, and the outer one catches errors
      return coroutine.resume(coroutine.create(function()
        while true do pcall(coroutine.wrap(function() while true do end end)) end
      end))
    end,
  }
  for _, job in ipairs(jobs) do
    local ok, err = pcall(async.wait_for, 0.03, function() return ex:run(job) end)
    lu.assertFalse(ok)
    lu.assertTrue(async.is_timeout(err))
  end
  -- coroutines behave as Lua's own otherwise
  lu.assertEquals(ex:run(function()
    local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)
    local ok, err = pcall(coroutine.wrap(function() error("inner") end))
    local co = coroutine.create(function(a) return a * 2 end)
    return gen() + gen() + gen(), ok, err:match("inner") ~= nil, select(2, coroutine.resume(co, 21)),
           coroutine.status(co)
  end), 6)
  lu.assertEquals({ex:run(function()
    local ok, err = pcall(coroutine.wrap(function() error("inner") end))
    return ok, err:match("inner"), select(2, coroutine.resume(coroutine.create(function(a) return a * 2 end), 21))
  end)}, {false, "inner", 42})
  lu.assertStrContains(crossing_error(ex.run, ex, function() return coroutine.resume(1) end),
                       "bad argument #1 to 'resume' (coroutine expected")
end

function TestCancel:test_queued_job_never_runs()
  local ex <close> = async.executor{workers = 1}
  local blocker = ex:submit(forever)
  until_running(ex, 1)
  local queued = ex:submit(function() RAN = true end)   -- a global of the worker's state
  lu.assertEquals(ex:stats().queued, 1)
  lu.assertTrue(queued:cancel())
  lu.assertEquals(ex:stats().queued, 0)
  blocker:cancel()
  lu.assertTrue(async.is_cancelled(queued:error()))
  lu.assertNil(ex:run(function() return RAN end))     -- same state: it never ran
end

function TestCancel:test_cancel_task_waiting_in_to_thread()
  local ex <close> = async.executor{workers = 1}
  local started = async.future()
  local t = async.spawn(function() return ex:run(forever) end)
  local u = async.spawn(function() started:resolve() return ex:run(echo, "queued") end)
  started:await()
  async.sleep(0)
  lu.assertEquals(t:state(), "waiting")
  lu.assertEquals(u:state(), "waiting")
  u:cancel()                              -- queued: dropped
  t:cancel()                              -- running: interrupted
  lu.assertTrue(async.is_cancelled(select(2, pcall(u.await, u))))
  lu.assertTrue(async.is_cancelled(select(2, pcall(t.await, t))))
  lu.assertEquals(ex:run(echo, 5), 5)
  lu.assertEquals(ex:stats().pending, 0)
end

function TestCancel:test_cancelled_waiter_result_is_discarded()
  -- The job ends normally after its task gave up: nothing leaks, the
  -- worker goes on.
  local ex <close> = async.executor{workers = 1}
  local gate = ex:submit(function() local s = 0 for i = 1, 3e6 do s = s + i end return s end)
  local t = async.spawn(function() return gate:await() end)
  async.sleep(0)
  t:cancel()
  lu.assertTrue(gate:cancelled())
  lu.assertEquals(ex:run(echo, "ok"), "ok")
end

-- min_workers: how many threads start with the executor; the rest start as
-- jobs arrive, up to workers; none retires before close.
function TestExecutor:test_min_workers()
  local lazy <close> = async.executor{workers = 2, min_workers = 0}
  lu.assertEquals(lazy:stats().threads, 0)
  lu.assertEquals(lazy:run(echo, 1), 1)
  lu.assertEquals(lazy:stats().threads, 1)    -- one job: one thread
  local some <close> = async.executor{workers = 3, min_workers = 1}
  lu.assertEquals(some:stats().threads, 1)
  local all <close> = async.executor{workers = 3}
  lu.assertEquals(all:stats().threads, 3)
  lu.assertEquals(all:stats().idle + all:stats().running <= 3, true)
  local futures = {}
  for i = 1, 6 do futures[i] = all:submit(echo, i) end
  for i = 1, 6 do lu.assertEquals(futures[i]:await(), i) end
  lu.assertEquals(all:stats().threads, 3)     -- idle ones stay
end

function TestExecutor:test_min_workers_bad_values()
  lu.assertErrorMsgContains("min_workers must be 0 to 2 (got 3)", async.executor,
                            {workers = 2, min_workers = 3})
  lu.assertErrorMsgContains("min_workers must be 0 to", async.executor, {min_workers = -1})
  lu.assertErrorMsgContains("min_workers must be an integer (got string)", async.executor,
                            {workers = 2, min_workers = "2"})
  lu.assertErrorMsgContains("min_workers must be an integer (got number)", async.executor,
                            {workers = 2, min_workers = 1.5})
end

TestShutdown = support.suite {}

function TestShutdown:test_close_waits_for_jobs_in_flight()
  local before = threads()
  local ex = async.executor{workers = 2}
  local futures = {}
  for i = 1, 6 do
    futures[i] = ex:submit(function(n) local s = 0 for k = 1, n do s = s + k end return s end, i * 10000)
  end
  lu.assertEquals(ex:stats().threads, 2)
  ex:close()
  for i = 1, 6 do
    local n = i * 10000
    lu.assertEquals(futures[i]:result(), n * (n + 1) // 2)
  end
  lu.assertEquals(ex:stats().threads, 0)
  lu.assertEquals(threads_after_join(before), before)
  lu.assertStrContains(crossing_error(ex.submit, ex, echo), "the executor is closed")
  lu.assertStrContains(crossing_error(ex.run, ex, echo), "the executor is closed")
  ex:close()                              -- again: nothing to do
end

function TestShutdown:test_close_without_waiting_cancels_jobs_in_flight()
  local before = threads()
  local ex = async.executor{workers = 2}
  local running1, running2 = ex:submit(forever), ex:submit(forever)
  local queued = ex:submit(echo, 1)
  local waiter = async.spawn(function() return ex:run(forever) end)
  until_running(ex, 2)
  async.sleep(0)
  ex:close(false)                         -- returns at once
  for _, f in ipairs{running1, running2, queued} do
    local ok, err = pcall(f.await, f)
    lu.assertFalse(ok)
    lu.assertTrue(async.is_cancelled(err))
  end
  local ok, err = pcall(waiter.await, waiter)
  lu.assertFalse(ok)
  lu.assertTrue(async.is_cancelled(err))
  ex:close()                              -- waits for the threads
  lu.assertEquals(threads_after_join(before), before)
end

function TestShutdown:test_close_variable_and_collected_executor()
  local before = threads()
  do
    local ex <close> = async.executor{workers = 3}
    ex:map(echo, {1, 2, 3, 4, 5, 6})
  end
  lu.assertEquals(threads_after_join(before), before)
  -- an executor nobody holds still finishes what was submitted
  local f = async.executor{workers = 1}:submit(function() return "finished" end)
  collectgarbage()
  lu.assertEquals(f:await(), "finished")
  async.sleep(0)
  collectgarbage()
  collectgarbage()
  lu.assertEquals(threads_after_join(before), before)
end

function TestShutdown:test_cancel_the_task_waiting_in_close()
  local ex = async.executor{workers = 1}
  local job = ex:submit(forever)
  local t = async.spawn(function() ex:close() end)
  async.sleep(0)
  lu.assertEquals(t:state(), "waiting")
  t:cancel()
  lu.assertTrue(async.is_cancelled(select(2, pcall(t.await, t))))
  lu.assertEquals(job:state(), "pending")   -- close(wait) lets jobs finish
  job:cancel()
  ex:close()
  lu.assertEquals(ex:stats().threads, 0)
end

TestGrowth = support.suite({}, 60)

-- Under AddressSanitizer, ThreadSanitizer or valgrind, freed memory sits
-- in a quarantine for a while, so RSS grows whatever the program does.
local sanitized = (function()
  for line in io.lines("/proc/self/maps") do
    if line:find("lib[at]san") or line:find("vgpreload") then return true end
  end
  return false
end)()

function TestGrowth:test_many_small_jobs_no_growth()
  local ex = executor.default()
  local list = {}
  for i = 1, 10000 do list[i] = i end
  local function round()
    local futures = {}
    for i = 1, #list do futures[i] = ex:submit(echo, list[i]) end
    for i = 1, #list do assert(futures[i]:await() == i) end
    futures = nil
    collectgarbage()
    collectgarbage()
    return threads(), rss_kb(), collectgarbage("count")
  end
  round()                                 -- warm up: threads, caches, arenas
  local t1, rss1, lua1 = round()
  local t2, rss2, lua2 = round()
  local t3, rss3 = round()
  lu.assertEquals(t2, t1)
  lu.assertEquals(t3, t1)
  lu.assertTrue(ex:stats().threads <= ex:stats().workers)
  lu.assertTrue(math.abs(lua2 - lua1) < 256, ("Lua heap %.0f KB -> %.0f KB"):format(lua1, lua2))
  if not sanitized then                   -- their allocators keep freed memory
    lu.assertTrue(rss3 - rss1 < 2048, ("RSS %d KB -> %d KB -> %d KB"):format(rss1, rss2, rss3))
  end
  for _ = 1, 1000 do assert(async.to_thread(echo, 1) == 1) end
  lu.assertEquals(threads(), t1)
end

support.run(...)
