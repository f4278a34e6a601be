-- tests/test_coroutine.lua: plain coroutines inside tasks (generators that
-- wait), the refusals that keep the scheduler's coroutines safe, and the
-- call_soon / call_later callbacks and async.time.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"

------------------------------------------------------------ generators

TestGenerators = support.suite {}

-- The paginated fetch pattern: each page "arrives" after a wait.
local function pages(n)
  return coroutine.wrap(function()
    for page = 1, n do
      async.sleep(0.001)                -- fetching
      for item = 1, 2 do coroutine.yield(page, item) end
    end
  end)
end

function TestGenerators:test_wrap_generator_that_waits_in_generic_for()
  local got = {}
  for page, item in pages(3) do got[#got + 1] = page * 10 + item end
  lu.assertEquals(got, {11, 12, 21, 22, 31, 32})
end

function TestGenerators:test_generator_waits_let_other_tasks_run()
  local log, add = support.log()
  local other = async.spawn(function()
    for i = 1, 3 do add("other " .. i) async.sleep(0) end
  end)
  local gen = coroutine.wrap(function()
    for i = 1, 3 do async.sleep(0) coroutine.yield(i) end
  end)
  for v in gen do add("gen " .. v) end
  other:await()
  lu.assertEquals(log, {"other 1", "gen 1", "other 2", "gen 2", "other 3", "gen 3"})
end

function TestGenerators:test_generator_in_spawned_task()
  local t = async.spawn(function()
    local sum = 0
    for page, item in pages(2) do sum = sum + page * item end
    return sum
  end)
  lu.assertEquals(t:await(), 1 + 2 + 2 + 4)
end

function TestGenerators:test_resume_of_waiting_coroutine()
  local co = coroutine.create(function(a)
    async.sleep(0.001)
    local b = coroutine.yield(a + 1)
    local f = async.future()
    async.call_soon(function() f:resolve(b * 2) end)
    return f:await(), "end"
  end)
  lu.assertEquals({coroutine.resume(co, 1)}, {true, 2})
  lu.assertEquals(coroutine.status(co), "suspended")
  lu.assertEquals({coroutine.resume(co, 5)}, {true, 10, "end"})
  lu.assertEquals(coroutine.status(co), "dead")
  local ok, err = coroutine.resume(co)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "dead coroutine")
end

function TestGenerators:test_resume_reports_errors_after_a_wait()
  local co = coroutine.create(function()
    async.sleep(0.001)
    error("generator failed", 0)
  end)
  local ok, err = coroutine.resume(co)
  lu.assertFalse(ok)
  lu.assertEquals(err, "generator failed")
end

function TestGenerators:test_wrap_raises_errors_after_a_wait()
  local gen = coroutine.wrap(function()
    async.sleep(0.001)
    error({code = "E"})
  end)
  local ok, err = pcall(gen)
  lu.assertFalse(ok)
  lu.assertEquals(err.code, "E")
end

function TestGenerators:test_nested_generators_wait()
  local inner = function()
    return coroutine.wrap(function()
      for i = 1, 2 do async.sleep(0) coroutine.yield(i) end
    end)
  end
  local outer = coroutine.wrap(function()
    for a in inner() do
      for b in inner() do
        async.sleep(0.001)
        coroutine.yield(a * 10 + b)
      end
    end
  end)
  local got = {}
  for v in outer do got[#got + 1] = v end
  lu.assertEquals(got, {11, 12, 21, 22})
end

function TestGenerators:test_cancel_while_generator_waits()
  local log, add = support.log()
  local t = async.spawn(function()
    local gen = coroutine.wrap(function()
      local ok, err = pcall(async.sleep, 10)
      add(async.is_cancelled(err) and "generator saw Cancelled" or "woken")
      error(err, 0)
    end)
    gen()
  end)
  async.sleep(0)
  lu.assertEquals(t:state(), "waiting")
  t:cancel()
  local ok, err = pcall(t.await, t)
  lu.assertFalse(ok)
  lu.assertTrue(async.is_cancelled(err), tostring(err))
  lu.assertEquals(log, {"generator saw Cancelled"})
end

function TestGenerators:test_yield_inside_pcall_in_generator()
  local gen = coroutine.wrap(function()
    pcall(function()
      async.sleep(0.001)
      coroutine.yield("from pcall")
    end)
    coroutine.yield("after")
  end)
  lu.assertEquals(gen(), "from pcall")
  lu.assertEquals(gen(), "after")
end

------------------------------------------------------------ refusals

TestCoroutineRefusals = support.suite {}

function TestCoroutineRefusals:test_bare_yield_at_task_top_level()
  local ok, err = pcall(coroutine.yield, 1)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "use async.sleep(0)")
  local t = async.spawn(function() coroutine.yield("x") end)
  local ok2, err2 = pcall(t.await, t)
  lu.assertFalse(ok2)
  lu.assertStrContains(err2, "use async.sleep(0)")
  lu.assertEquals(t:state(), "failed")
end

function TestCoroutineRefusals:test_task_survives_refused_yield()
  local t = async.spawn(function()
    local ok = pcall(coroutine.yield)
    async.sleep(0.001)
    return ok
  end)
  lu.assertFalse(t:await())
end

function TestCoroutineRefusals:test_resuming_a_tasks_coroutine_is_refused()
  local co
  local f = async.future()
  local victim = async.spawn(function()
    co = coroutine.running()
    return f:await()
  end)
  async.sleep(0)
  lu.assertEquals(victim:state(), "waiting")
  local attacker = async.spawn(function() return coroutine.resume(co, "bogus") end)
  local ok, err = attacker:await()
  lu.assertFalse(ok)
  lu.assertIsString(err)
  lu.assertStrContains(err, "cannot resume")
  -- the victim is untouched: still waiting, and gets the right value
  lu.assertEquals(victim:state(), "waiting")
  f:resolve("right")
  lu.assertEquals(victim:await(), "right")
end

function TestCoroutineRefusals:test_resuming_a_sleeping_tasks_coroutine_from_main()
  local co
  local victim = async.spawn(function()
    co = coroutine.running()
    async.sleep(0.002)
    return "slept"
  end)
  async.sleep(0)
  local ok, err = coroutine.resume(co)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "cannot resume")
  lu.assertEquals(victim:await(), "slept")
end

function TestCoroutineRefusals:test_wrap_of_a_tasks_function_cannot_steal_its_wait()
  -- a coroutine waiting inside one task cannot be resumed by another task
  local f = async.future()
  local gen = coroutine.create(function() return f:await() end)
  local owner = async.spawn(function() return coroutine.resume(gen) end)
  async.sleep(0)
  local thief = async.spawn(function() return coroutine.resume(gen) end)
  local ok, err = thief:await()
  lu.assertFalse(ok)
  lu.assertStrContains(err, "cannot resume")
  f:resolve("owner's")
  lu.assertEquals({owner:await()}, {true, "owner's"})
end

function TestCoroutineRefusals:test_closing_a_tasks_coroutine_is_refused()
  -- coroutine.close on a task's coroutine (suspended in a wait) would kill
  -- the task behind the scheduler's back; like resume, it must be refused
  -- and leave the task untouched
  local co
  local f = async.future()
  local victim = async.spawn(function()
    co = coroutine.running()
    return f:await()
  end)
  async.sleep(0)
  local ok = pcall(coroutine.close, co)
  lu.assertFalse(ok, "coroutine.close of a waiting task's coroutine succeeded")
  lu.assertEquals(victim:state(), "waiting")
  f:resolve("right")
  lu.assertEquals(victim:await(), "right")
end

function TestCoroutineRefusals:test_closing_a_waiting_generator_is_refused()
  local gen = coroutine.create(function() async.sleep(0.002) return "gen done" end)
  local owner = async.spawn(function() return coroutine.resume(gen) end)
  async.sleep(0)
  local ok = pcall(coroutine.close, gen)
  lu.assertFalse(ok, "coroutine.close of a generator waiting inside a task succeeded")
  lu.assertEquals({owner:await()}, {true, "gen done"})
end

function TestCoroutineRefusals:test_status_of_a_tasks_coroutine()
  local co
  local t = async.spawn(function() co = coroutine.running() async.sleep(0.001) end)
  async.sleep(0)
  lu.assertEquals(coroutine.status(co), "suspended")
  t:await()
end

function TestCoroutineRefusals:test_resume_main_task_coroutine_is_refused()
  local ok, err = coroutine.resume(coroutine.running())
  lu.assertFalse(ok)
  lu.assertIsString(err)
end

------------------------------------------------------------ callbacks

-- On the virtual clock: call_later's deadline order is then exact (the 4 ms
-- callback armed first could fall after a 1 ms one armed >3 ms later).
TestCallbacks = support.suite({}, {timeout = 5, virtual_clock = true})

function TestCallbacks:test_call_soon_fifo_with_args()
  local log, add = support.log()
  for i = 1, 5 do async.call_soon(add, i) end
  async.call_soon(function(a, b, c) add({a, b, c}) end, 1, nil, 3)
  async.sleep(0)
  lu.assertEquals(log, {1, 2, 3, 4, 5, {1, nil, 3}})
end

function TestCallbacks:test_call_soon_does_not_run_immediately()
  local ran = false
  async.call_soon(function() ran = true end)
  lu.assertFalse(ran)
  async.sleep(0)
  lu.assertTrue(ran)
end

function TestCallbacks:test_call_soon_from_callback_runs_next_round()
  local log, add = support.log()
  async.call_soon(function()
    add("first")
    async.call_soon(function() add("nested") end)
  end)
  async.call_soon(function() add("second") end)
  async.sleep(0)
  lu.assertEquals(log, {"first", "second"})
  async.sleep(0)
  lu.assertEquals(log, {"first", "second", "nested"})
end

function TestCallbacks:test_call_later_order()
  local log, add = support.log()
  local f = async.future()
  async.call_later(0.004, function() add("c") f:resolve() end)
  async.call_later(0.001, function() add("a") end)
  async.call_later(0.002, function() add("b1") end)
  async.call_later(0.002, function() add("b2") end)
  f:await()
  lu.assertEquals(log, {"a", "b1", "b2", "c"})
end

function TestCallbacks:test_call_later_cancel_prevents_call()
  local ran = false
  local h = async.call_later(0.001, function() ran = true end)
  lu.assertStrContains(tostring(h), "Handle<scheduled>")
  lu.assertFalse(h:cancelled())
  lu.assertTrue(h:cancel())
  lu.assertTrue(h:cancelled())
  lu.assertFalse(h:cancel())            -- twice
  async.sleep(0.005)
  lu.assertFalse(ran)
  lu.assertStrContains(tostring(h), "cancelled")
end

function TestCallbacks:test_call_soon_cancel()
  local ran = false
  local h = async.call_soon(function() ran = true end)
  lu.assertTrue(h:cancel())
  async.sleep(0)
  async.sleep(0)
  lu.assertFalse(ran)
end

function TestCallbacks:test_cancel_after_run_returns_false()
  local f = async.future()
  local h = async.call_later(0.001, function() f:resolve() end)
  f:await()
  lu.assertFalse(h:cancel())
  lu.assertFalse(h:cancelled())
  lu.assertStrContains(tostring(h), "done")
end

function TestCallbacks:test_call_later_zero_and_negative()
  local log, add = support.log()
  async.call_later(0, add, "zero")
  async.call_later(-1, add, "negative")
  async.sleep(0)
  lu.assertEquals(log, {"zero", "negative"})
end

function TestCallbacks:test_callback_error_does_not_stop_the_program()
  -- the error is reported on stderr (see test_report_of_callback_error);
  -- the loop and the next callbacks go on
  local log, add = support.log()
  async.call_soon(function() error("callback failure") end)
  async.call_soon(add, "next")
  async.call_later(0.001, function() error("later failure") end)
  local f = async.future()
  async.call_later(0.002, function() f:resolve("still running") end)
  lu.assertEquals(f:await(), "still running")
  lu.assertEquals(log, {"next"})
end

function TestCallbacks:test_report_of_callback_error()
  local out = support.lasync_run([[
    async.call_soon(function()
      local function callback_that_fails() error("callback failure") end
      callback_that_fails()
    end)
    async.sleep(0.001)
    print("program continues")
  ]])
  lu.assertEquals(out.status, 0, out.stderr)
  lu.assertStrContains(out.stdout, "program continues")
  lu.assertStrContains(out.stderr, "callback failure")
  lu.assertStrContains(out.stderr, "callback_that_fails")   -- with a traceback
end

function TestCallbacks:test_callback_cannot_wait()
  local f = async.future()
  async.call_soon(function()
    local ok, err = pcall(async.sleep, 0.001)
    f:resolve(ok, err)
  end)
  local ok, err = f:await()
  lu.assertFalse(ok)
  lu.assertStrContains(err, "not inside a task")
end

function TestCallbacks:test_argument_errors()
  lu.assertErrorMsgContains("bad argument #1", async.call_soon, 5)
  lu.assertErrorMsgContains("bad argument #1", async.call_later, "x", function() end)
  lu.assertErrorMsgContains("NaN", async.call_later, 0 / 0, function() end)
  lu.assertErrorMsgContains("bad argument #2", async.call_later, 1, 5)
  lu.assertEquals(support.timers(), 0)
end

------------------------------------------------------------ time

TestTime = support.suite {}

function TestTime:test_time_is_monotonic_non_decreasing()
  local prev = async.time()
  lu.assertEquals(type(prev), "number")
  for i = 1, 200 do
    if i % 50 == 0 then async.sleep(0.001) elseif i % 10 == 0 then async.sleep(0) end
    local now = async.time()
    lu.assertTrue(now >= prev, ("time went back: %.9f < %.9f"):format(now, prev))
    prev = now
  end
end

function TestTime:test_time_advances_over_a_sleep()
  -- a sleep never ends before its deadline (order, not duration: the
  -- clock read after the sleep is past the deadline computed before)
  local deadline = async.time() + 0.002
  async.sleep(0.002)
  lu.assertTrue(async.time() >= deadline)
end

support.run(...)
