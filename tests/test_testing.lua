-- async.testing, the virtual clock and `lasync test`.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"
local testing = require "async.testing"
local core = require "async.core"

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p " .. support.shell_quote(d)))
  return d
end

local function rmtree(d) os.execute("rm -rf " .. support.shell_quote(d)) end

---------------------------------------------------------- virtual clock

TestVirtualClock = support.suite({}, {timeout = 60, virtual_clock = true})  -- (slow under TSan)

function TestVirtualClock:test_a_day_of_timers_fires_in_order_and_exact()
  local start, fired = async.time(), {}
  local tasks = {}
  for i = 1, 10000 do
    local d = (i * 7919) % 86400           -- spread over 24 hours
    tasks[i] = async.spawn(function()
      async.sleep(d)
      fired[#fired + 1] = d
      return async.time() - start
    end)
  end
  local res = async.gather(tasks)
  lu.assertEquals(#fired, 10000)
  for i = 2, #fired do lu.assertTrue(fired[i - 1] <= fired[i]) end
  for i = 1, 10000 do lu.assertTrue(res[i] == (i * 7919) % 86400, "exact time") end
end

function TestVirtualClock:test_an_hour_long_timeout_fires()
  local ok, err = pcall(async.timeout, 3600, async.sleep, 7200)
  lu.assertFalse(ok)
  lu.assertTrue(async.is_timeout(err))
end

function TestVirtualClock:test_exponential_backoff_retry()
  local start, attempts, delay = async.time(), {}, 1
  for _ = 1, 6 do
    attempts[#attempts + 1] = async.time() - start
    async.sleep(delay)
    delay = delay * 2
  end
  for i, want in ipairs{0, 1, 3, 7, 15, 31} do lu.assertTrue(attempts[i] == want) end
end

function TestVirtualClock:test_call_later_and_wait_for_follow_it()
  local f = async.future()
  local start = async.time()
  async.call_later(600, function() f:resolve(async.time() - start) end)
  lu.assertTrue(async.wait_for(900, f) == 600)
  local t = async.spawn(async.sleep, 10000)
  lu.assertTrue(async.is_timeout(select(2, pcall(async.wait_for, 60, t))))
  lu.assertTrue(t:cancelled())
end

function TestVirtualClock:test_time_stands_still_while_a_task_can_run()
  local t0 = async.time()
  for _ = 1, 100 do async.sleep(0) end
  local x = 0
  for i = 1, 1e5 do x = x + i end
  lu.assertEquals(async.time(), t0)
end

function TestVirtualClock:test_advance_moves_time_by_hand()
  local woke = false
  async.spawn(function() async.sleep(5); woke = true end)
  async.sleep(0)
  local t0 = async.time()
  core.advance(5)
  lu.assertTrue(async.time() - t0 == 5)
  async.sleep(0)
  lu.assertTrue(woke)
end

TestClockSwitch = support.suite {}

function TestClockSwitch:test_switching_keeps_time_monotonic()
  local t0 = async.time()
  lu.assertEquals(core.clock("virtual"), "real")
  async.sleep(1000)
  local t1 = async.time()
  lu.assertEquals(core.clock("real"), "virtual")
  local t2 = async.time()
  lu.assertTrue(t1 - t0 >= 1000)
  lu.assertTrue(t2 >= t1)
  async.sleep(0.001)
  lu.assertTrue(async.time() > t2)
end

function TestClockSwitch:test_bad_arguments()
  lu.assertErrorMsgContains("invalid option 'fake'", core.clock, "fake")
  lu.assertErrorMsgContains("must not be negative", core.clock, "virtual", -1)
  lu.assertErrorMsgContains("not virtual", core.advance, 1)
end

---------------------------------------------------------------- checks

TestChecks = support.suite {}

function TestChecks:test_leaked_task_is_named()
  local t = async.spawn(function() async.sleep(100) end)
  t:set_name("forgotten-worker")
  async.sleep(0)
  local ok, err = pcall(testing.check_clean)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "forgotten-worker")
  lu.assertStrContains(err, "test_testing.lua:")
  lu.assertTrue(t:cancelled())             -- and it was swept away
end

function TestChecks:test_timeout_reports_stuck_tasks_and_where()
  local f = async.future()
  local helper = async.spawn(function() f:await() end)   -- line to be named
  helper:set_name("stuck-helper")
  -- something keeps the loop alive (a socket, a process): not a deadlock,
  -- which the lasync command would report at once
  local keep = core.alarm(60, function() end)
  local ok, err = testing.run_with_timeout(0.05, function()
    helper:await()
  end)
  keep()
  lu.assertFalse(ok)
  lu.assertStrContains(err, "test timed out after 0.05 s")
  lu.assertStrContains(err, "stuck-helper (waiting at tests/test_testing.lua:")
  helper:cancel()
  pcall(helper.await, helper)
end

function TestChecks:test_leaked_handle_is_named()
  local stop
  local wrapped = testing.test(function()
    stop = core.alarm(100, function() end)   -- a libuv timer, never closed
  end)
  local ok, err = pcall(wrapped)
  stop()
  lu.assertFalse(ok)
  lu.assertStrContains(err, "the test left handles open: 1 timer")
  lu.assertTrue(pcall(testing.test(function() end)))
end

function TestChecks:test_with_timeout_sets_one_tests_timeout()
  local fn = function() end
  lu.assertIs(testing.with_timeout(30, fn), fn)
end

function TestChecks:test_describe()
  local t = async.spawn(function() async.sleep(10) end)
  async.sleep(0)
  lu.assertStrMatches(testing.describe(t), "task%-%d+ %(waiting at tests/test_testing.lua:%d+%)")
  t:cancel()
  pcall(t.await, t)
end

-------------------------------------------------------------- the command

TestCommand = support.suite({}, 30)

local function write(dir, name, src) support.write_file(dir .. "/" .. name, src) end

function TestCommand:test_discovers_runs_and_totals()
  local d = tmpdir()
  os.execute("mkdir -p " .. support.shell_quote(d .. "/sub"))
  write(d, "test_a.lua", [[
    TestA = require("async.testing").suite {}
    function TestA:test_waits() async.sleep(0.001) end
    function TestA:test_fails() error("deliberate") end
  ]])
  write(d .. "/sub", "test_b.lua", [[
    TestB = require("async.testing").suite {}
    function TestB:test_one() end
    function TestB:test_leaks() async.spawn(async.sleep, 10) end
  ]])
  write(d, "helper.lua", "error('not a test file')")
  local r = support.sh(support.shell_quote(support.LASYNC) .. " test " .. support.shell_quote(d))
  rmtree(d)
  lu.assertEquals(r.status, 1)
  lu.assertStrContains(r.stdout, "2 passed, 2 failed, 0 skipped")
  lu.assertStrContains(r.stdout, "deliberate")
  lu.assertStrContains(r.stdout, "the test left tasks running")
end

function TestCommand:test_passes_luaunit_options_and_exits_0()
  local d = tmpdir()
  write(d, "test_ok.lua", [[
    TestOk = require("async.testing").suite {}
    function TestOk:test_one() end
    function TestOk:test_two() end
  ]])
  local r = support.sh(support.shell_quote(support.LASYNC) .. " test " .. support.shell_quote(d) ..
                       " -o tap -p one")
  rmtree(d)
  lu.assertEquals(r.status, 0)
  lu.assertStrContains(r.stdout, "ok     1\tTestOk.test_one")
  lu.assertStrContains(r.stdout, "1 passed, 0 failed, 0 skipped")
end

function TestCommand:test_a_file_that_does_not_load_counts_as_failed()
  local d = tmpdir()
  write(d, "test_broken.lua", "this is not lua")
  local r = support.sh(support.shell_quote(support.LASYNC) .. " test " .. support.shell_quote(d))
  rmtree(d)
  lu.assertEquals(r.status, 1)
  lu.assertStrContains(r.stdout, "ran no test")
  lu.assertStrContains(r.stdout, "0 passed, 1 failed")
end

-- A failing run shows LuaUnit's report and ends with status 1, without a
-- traceback into async/testing.lua, under `lasync test` and run alone.
function TestCommand:test_failure_output_is_luaunits_summary_and_status_1()
  local d = tmpdir()
  write(d, "test_fail.lua", [[
    local lu = require "luaunit"
    local testing = require "async.testing"
    TestF = testing.suite {}
    function TestF:test_good() end
    function TestF:test_bad() lu.assertEquals(1, 2) end
    testing.run(...)
  ]])
  local exe = support.shell_quote(support.LASYNC)
  local file = support.shell_quote(d .. "/test_fail.lua")
  local r = support.sh(exe .. " test " .. file)
  local alone = support.sh(exe .. " " .. file)
  rmtree(d)
  lu.assertEquals(r.status, 1)
  lu.assertStrContains(r.stdout, "expected: 2, actual: 1")
  lu.assertStrContains(r.stdout, "Ran 2 tests")
  lu.assertStrContains(r.stdout, "1 passed, 1 failed, 0 skipped")
  lu.assertNotStrContains(r.stdout, "async/testing.lua")
  lu.assertNotStrContains(r.stdout, "nobody awaited")
  lu.assertEquals(alone.status, 1)
  lu.assertStrContains(alone.stdout, "Ran 2 tests")
  lu.assertStrContains(alone.stderr, "1 test(s) failed")
  lu.assertNotStrContains(alone.stderr, "traceback")
  lu.assertNotStrContains(alone.stderr, "lasync-test:")
end

-- A test stuck where nothing can wake it ends at once as a deadlock, with
-- every blocked task reported, and the file's other tests still run.
function TestCommand:test_a_deadlocked_test_is_reported_at_once()
  local d = tmpdir()
  write(d, "test_dl.lua", [[
    TestD = require("async.testing").suite {}
    function TestD:test_stuck()
      local helper = async.spawn(function() async.future():await() end)
      helper:set_name("helper")
      helper:await()
    end
    function TestD:test_zzz_after() end
  ]])
  local r = support.sh(support.shell_quote(support.LASYNC) .. " test " .. support.shell_quote(d))
  rmtree(d)
  lu.assertEquals(r.status, 1)
  lu.assertStrContains(r.stdout, "deadlock: the main task is waiting")
  lu.assertStrContains(r.stdout, "task 'helper': waiting on future at")
  lu.assertStrContains(r.stdout, "test_dl.lua:5: in function")   -- the test's own stack
  lu.assertNotStrContains(r.stdout, "timed out")
  lu.assertStrContains(r.stdout, "1 passed, 1 failed, 0 skipped")
end

support.run(...)
