-- tests/test_cancel.lua: cancellation at every kind of await point, the
-- Cancelled error, cleanup (pcall and <close>) and stale wakes.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"

-- Spawns fn and runs until it has reached its first wait.
local function started(fn, ...)
  local t = async.spawn(fn, ...)
  async.sleep(0)
  return t
end

-- Awaits t, expecting it to end cancelled; returns the error.
local function expect_cancelled(t)
  local ok, err = pcall(t.await, t)
  lu.assertFalse(ok, "expected " .. tostring(t) .. " to be cancelled")
  lu.assertTrue(async.is_cancelled(err), "not a Cancelled error: " .. tostring(err))
  lu.assertEquals(t:state(), "cancelled")
  lu.assertTrue(t:cancelled())
  return err
end

------------------------------------------------------------ await points

TestCancelPoints = support.suite {}

function TestCancelPoints:test_sleep()
  local after = false
  local t = started(function() async.sleep(10) after = true end)
  lu.assertTrue(t:cancel())
  expect_cancelled(t)
  lu.assertFalse(after)
end

function TestCancelPoints:test_sleep_forever()
  local t = started(function() async.sleep(math.huge) end)
  lu.assertEquals(t:state(), "waiting")
  t:cancel()
  expect_cancelled(t)
end

function TestCancelPoints:test_sleep0()
  -- a cancellation of a task that yielded with sleep(0) is raised at its
  -- next wait
  local log, add = support.log()
  local t = started(function()
    add("before")
    async.sleep(0)
    add("after sleep(0)")
    async.sleep(0.001)
    add("never")
  end)
  lu.assertEquals(t:state(), "ready")
  t:cancel()
  expect_cancelled(t)
  lu.assertEquals(log, {"before", "after sleep(0)"})
end

function TestCancelPoints:test_future_await()
  local f = async.future()
  local t = started(function() return f:await() end)
  t:cancel("stop waiting")
  local err = expect_cancelled(t)
  lu.assertStrContains(tostring(err), "stop waiting")
  -- as in asyncio, cancelling the awaiter cancels the awaited future
  lu.assertTrue(f:cancelled())
  lu.assertFalse(f:resolve(1))
end

function TestCancelPoints:test_task_await_cancels_awaited_task()
  local log, add = support.log()
  local inner = async.spawn(function()
    local ok, err = pcall(async.sleep, 10)
    add(async.is_cancelled(err) and "inner cancelled" or "inner not cancelled")
    error(err, 0)
  end)
  local outer = started(function() return inner:await() end)
  lu.assertEquals(outer:state(), "waiting")
  lu.assertEquals(inner:state(), "waiting")
  outer:cancel()
  expect_cancelled(outer)
  expect_cancelled(inner)
  lu.assertEquals(log, {"inner cancelled"})
end

function TestCancelPoints:test_gather()
  local a = async.spawn(function() async.sleep(10) end)
  local b = async.spawn(function() async.sleep(10) end)
  local g = started(function() return async.gather(a, b) end)
  g:cancel("gather cancelled")
  local err = expect_cancelled(g)
  lu.assertStrContains(tostring(err), "gather cancelled")
  expect_cancelled(a)
  expect_cancelled(b)
end

function TestCancelPoints:test_wait_does_not_cancel_items()
  local f = async.future()
  local a = async.spawn(function() return f:await() end)
  local w = started(function() return async.wait({a}) end)
  w:cancel()
  expect_cancelled(w)
  async.sleep(0)
  lu.assertFalse(a:done())              -- wait never cancels what it waits on
  f:resolve("still fine")
  lu.assertEquals(a:await(), "still fine")
end

function TestCancelPoints:test_wait_first()
  local a = async.spawn(function() async.sleep(10) end)
  local w = started(function() return async.wait({a}, {return_when = "first"}) end)
  w:cancel()
  expect_cancelled(w)
  lu.assertFalse(a:done())
  a:cancel()
  expect_cancelled(a)
end

function TestCancelPoints:test_scope_children_cancelled_and_cleanup_runs()
  local log, add = support.log()
  local t = started(function()
    async.scope(function(g)
      for i = 1, 2 do
        g:spawn(function()
          local ok, err = pcall(async.sleep, 10)
          add("cleanup " .. i)
          error(err, 0)
        end)
      end
      async.sleep(10)
    end)
  end)
  async.sleep(0)                        -- let the children start
  t:cancel("parent cancelled")
  local err = expect_cancelled(t)
  lu.assertStrContains(tostring(err), "parent cancelled")
  table.sort(log)
  lu.assertEquals(log, {"cleanup 1", "cleanup 2"})
end

function TestCancelPoints:test_timeout_block_raises_cancelled_not_timeout()
  local t = started(function()
    return async.timeout(10, function() async.sleep(10) end)
  end)
  t:cancel("from outside")
  local err = expect_cancelled(t)
  lu.assertFalse(async.is_timeout(err))
  lu.assertStrContains(tostring(err), "from outside")
end

function TestCancelPoints:test_wait_for_task_cancels_both()
  local inner = async.spawn(function() async.sleep(10) end)
  local t = started(function() return async.wait_for(10, inner) end)
  t:cancel()
  expect_cancelled(t)
  expect_cancelled(inner)
end

function TestCancelPoints:test_shield_does_not_cancel_shielded()
  local f = async.future()
  local inner = async.spawn(function() return f:await() end)
  local outer = started(function() return async.shield(inner) end)
  outer:cancel()
  expect_cancelled(outer)
  async.sleep(0)
  lu.assertFalse(inner:done())
  lu.assertEquals(inner:state(), "waiting")
  f:resolve("shielded result")
  lu.assertEquals(inner:await(), "shielded result")
end

function TestCancelPoints:test_shield_returns_value_when_not_cancelled()
  local inner = async.spawn(function() async.sleep(0.001) return 1, 2 end)
  lu.assertEquals({async.shield(inner)}, {1, 2})
  lu.assertEquals({async.shield(function(x) return x end, "fn")}, {"fn"})
end

function TestCancelPoints:test_as_completed()
  local a = async.spawn(function() async.sleep(10) end)
  local t = started(function()
    for x in async.as_completed({a}) do end
  end)
  t:cancel()
  expect_cancelled(t)
  a:cancel()
  expect_cancelled(a)
end

function TestCancelPoints:test_cancel_from_callback()
  local t = started(function() async.sleep(10) end)
  async.call_soon(function() t:cancel("from callback") end)
  local err = expect_cancelled(t)
  lu.assertStrContains(tostring(err), "from callback")
end

------------------------------------------------------------ cancel()

TestCancelMethod = support.suite {}

function TestCancelMethod:test_cancel_before_start_body_never_runs()
  local ran = false
  local t = async.spawn(function() ran = true end)
  lu.assertTrue(t:cancel("too early"))
  local err = expect_cancelled(t)
  lu.assertFalse(ran)
  lu.assertStrContains(tostring(err), "too early")
end

function TestCancelMethod:test_cancel_done_task_returns_false()
  local t = async.spawn(function() return 1 end)
  t:await()
  lu.assertFalse(t:cancel())
  lu.assertEquals(t:state(), "done")
  lu.assertEquals(t:await(), 1)
  local bad = async.spawn(function() error("x", 0) end)
  pcall(bad.await, bad)
  lu.assertFalse(bad:cancel())
  lu.assertEquals(bad:state(), "failed")
  local c = started(function() async.sleep(10) end)
  lu.assertTrue(c:cancel())
  expect_cancelled(c)
  lu.assertFalse(c:cancel())
end

function TestCancelMethod:test_cancel_twice_first_message_wins()
  local t = started(function() async.sleep(10) end)
  lu.assertTrue(t:cancel("first"))
  lu.assertTrue(t:cancel("second"))    -- not done yet
  local err = expect_cancelled(t)
  lu.assertStrContains(tostring(err), "first")
end

function TestCancelMethod:test_cancel_twice_before_it_runs_is_one_cancellation()
  -- two cancel() calls before the task runs again deliver one Cancelled
  -- (as asyncio): the cleanup that follows may wait undisturbed
  local log, add = support.log()
  local t = started(function()
    local ok, err = pcall(async.sleep, 10)
    add("caught")
    local ok2, err2 = pcall(async.sleep, 0.001)
    add(ok2 and "cleanup waited" or "cleanup interrupted: " .. tostring(err2))
    error(err, 0)
  end)
  t:cancel("one")
  t:cancel("two")
  expect_cancelled(t)
  lu.assertEquals(log, {"caught", "cleanup waited"})
end

function TestCancelMethod:test_self_cancel_is_raised_at_next_wait_even_sleep0()
  local log, add = support.log()
  local t = async.spawn(function()
    lu.assertTrue(async.current():cancel("stop"))   -- while running: pending
    add("still running")
    local ok, err = pcall(async.sleep, 0)
    add(tostring(err))
    async.sleep(0.001)                             -- cleanup may wait
    error(err, 0)
  end)
  local err = expect_cancelled(t)
  lu.assertEquals(log, {"still running", "Cancelled: stop"})
  lu.assertEquals(err.message, "stop")
end

function TestCancelMethod:test_cancelled_error_fields()
  local t = started(function() async.sleep(10) end)
  t:cancel("why")
  local err = expect_cancelled(t)
  lu.assertIs(getmetatable(err), async.Cancelled)
  lu.assertEquals(err.kind, "Cancelled")
  lu.assertEquals(err.message, "why")
  lu.assertEquals(tostring(err), "Cancelled: why")
end

function TestCancelMethod:test_cancel_message_and_kind()
  local t = started(function() async.sleep(10) end)
  t:cancel("the reason")
  local err = expect_cancelled(t)
  lu.assertStrContains(tostring(err), "the reason")
  lu.assertStrContains(tostring(err), "Cancelled")
  lu.assertTrue(async.is_cancelled(t:error()))
  lu.assertFalse(async.is_timeout(err))
end

function TestCancelMethod:test_cancel_default_message()
  local t = started(function() async.sleep(10) end)
  t:cancel()
  local err = expect_cancelled(t)
  lu.assertStrContains(tostring(err), "Cancelled")
end

function TestCancelMethod:test_is_cancelled_on_other_values()
  lu.assertFalse(async.is_cancelled("Cancelled"))
  lu.assertFalse(async.is_cancelled({kind = "Cancelled"}))
  lu.assertFalse(async.is_cancelled(nil))
  lu.assertFalse(async.is_cancelled(42))
end

function TestCancelMethod:test_error_seen_inside_the_task()
  local t = started(function()
    local ok, err = pcall(async.sleep, 10)
    return ok, async.is_cancelled(err), tostring(err)
  end)
  t:cancel("inner view")
  local ok, is, msg = t:await()
  lu.assertFalse(ok)
  lu.assertTrue(is)
  lu.assertStrContains(msg, "inner view")
end

------------------------------------------------------------ cleanup

TestCancelCleanup = support.suite {}

function TestCancelCleanup:test_pcall_cleanup_may_wait()
  local log, add = support.log()
  local t = started(function()
    local ok, err = pcall(async.sleep, 10)
    add("caught")
    async.sleep(0.002)                  -- waiting in cleanup works
    local f = async.future()
    async.call_soon(function() f:resolve("cleanup value") end)
    add(f:await())
    error(err, 0)
  end)
  t:cancel()
  expect_cancelled(t)
  lu.assertEquals(log, {"caught", "cleanup value"})
end

function TestCancelCleanup:test_close_variable_runs_on_cancel()
  local log, add = support.log()
  local t = started(function()
    local _ <close> = setmetatable({}, {__close = function(_, e)
      add(async.is_cancelled(e) and "closed with Cancelled" or "closed")
    end})
    async.sleep(10)
  end)
  t:cancel()
  expect_cancelled(t)
  lu.assertEquals(log, {"closed with Cancelled"})
end

function TestCancelCleanup:test_close_that_waits_runs_on_cancel()
  local log, add = support.log()
  local t = started(function()
    local _ <close> = setmetatable({}, {__close = function()
      add("closing")
      async.sleep(0.002)
      add("closed")
    end})
    async.sleep(10)
  end)
  t:cancel()
  expect_cancelled(t)
  lu.assertEquals(log, {"closing", "closed"})
end

function TestCancelCleanup:test_nested_close_variables_run_in_reverse_order()
  local log, add = support.log()
  local function closer(name)
    return setmetatable({}, {__close = function() async.sleep(0) add(name) end})
  end
  local t = started(function()
    local _a <close> = closer("a")
    local _b <close> = closer("b")
    async.sleep(10)
  end)
  t:cancel()
  expect_cancelled(t)
  lu.assertEquals(log, {"b", "a"})
end

function TestCancelCleanup:test_catch_and_return_ends_done()
  local t = started(function()
    local ok, err = pcall(async.sleep, 10)
    async.sleep(0.001)
    return "recovered", ok, async.is_cancelled(err)
  end)
  t:cancel()
  local r, ok, is = t:await()
  lu.assertEquals(r, "recovered")
  lu.assertFalse(ok)
  lu.assertTrue(is)
  lu.assertEquals(t:state(), "done")
  lu.assertFalse(t:cancelled())
  lu.assertNil(t:error())
end

function TestCancelCleanup:test_error_in_cleanup_propagates()
  local t = started(function()
    pcall(async.sleep, 10)
    async.sleep(0)
    error("cleanup failed", 0)
  end)
  t:cancel()
  local ok, err = pcall(t.await, t)
  lu.assertFalse(ok)
  lu.assertEquals(err, "cleanup failed")
  lu.assertEquals(t:state(), "failed")
end

function TestCancelCleanup:test_error_in_close_propagates()
  local t = started(function()
    local _ <close> = setmetatable({}, {__close = function()
      async.sleep(0)
      error("close failed", 0)
    end})
    async.sleep(10)
  end)
  t:cancel()
  local ok, err = pcall(t.await, t)
  lu.assertFalse(ok)
  lu.assertEquals(err, "close failed")
  lu.assertEquals(t:state(), "failed")
end

function TestCancelCleanup:test_cancelled_in_cleanup_again()
  -- a second cancellation while the task waits in its cleanup is raised
  -- from the cleanup's wait
  local log, add = support.log()
  local t = started(function()
    local ok, err = pcall(async.sleep, 10)
    add("first " .. tostring(async.is_cancelled(err)))
    local ok2, err2 = pcall(async.sleep, 10)
    add("second " .. tostring(async.is_cancelled(err2)))
    error(err2, 0)
  end)
  t:cancel("one")
  async.sleep(0)
  lu.assertEquals(log, {"first true"})
  t:cancel("two")
  local err = expect_cancelled(t)
  lu.assertStrContains(tostring(err), "two")
  lu.assertEquals(log, {"first true", "second true"})
end

------------------------------------------------------------ ready tasks

TestCancelReady = support.suite {}

function TestCancelReady:test_woken_value_is_not_lost()
  local log, add = support.log()
  local f = async.future()
  local t = started(function()
    local v = f:await()
    add("got " .. tostring(v))
    local ok, err = pcall(async.sleep, 10)
    add(async.is_cancelled(err) and "cancelled at next wait" or "not cancelled")
    return v
  end)
  f:resolve("the value")
  lu.assertEquals(t:state(), "ready")   -- woken, not yet run
  lu.assertTrue(t:cancel("late"))
  lu.assertEquals(t:await(), "the value")
  lu.assertEquals(log, {"got the value", "cancelled at next wait"})
end

function TestCancelReady:test_woken_task_result_is_not_lost()
  local f = async.future()
  local child = async.spawn(function() return f:await() end)
  local t = started(function()
    local v = child:await()
    async.sleep(10)
    return v
  end)
  f:resolve("child value")
  async.sleep(0)                        -- child finishes, t becomes ready
  lu.assertTrue(child:done())
  lu.assertEquals(t:state(), "ready")
  t:cancel()
  expect_cancelled(t)
  lu.assertEquals(child:await(), "child value")
end

function TestCancelReady:test_woken_task_delivers_value_then_ends_cancelled()
  local f = async.future()
  local got
  local t = started(function()
    got = f:await()
    async.sleep(10)
  end)
  f:resolve(42)
  t:cancel()
  expect_cancelled(t)
  lu.assertEquals(got, 42)
end

function TestCancelReady:test_sleep_finished_then_cancelled()
  local log, add = support.log()
  local t = started(function()
    async.sleep(0.002)
    add("slept")
    async.sleep(10)
    add("never")
  end)
  -- pass t's deadline without letting the loop run, then yield until the
  -- loop has run its timers: t's wake is queued behind our own sleep(0),
  -- so we run first and find t ready (woken, not yet run)
  local t0 = async.time()
  while async.time() < t0 + 0.004 do end
  repeat async.sleep(0) until t:state() ~= "waiting"
  lu.assertEquals(t:state(), "ready")
  t:cancel()
  expect_cancelled(t)
  lu.assertEquals(log, {"slept"})
end

------------------------------------------------------------ stale wakes

TestStaleWakes = support.suite {}

-- Runs a few rounds and checks t is still waiting and logged nothing new.
local function assert_still_waiting(t, log, n)
  for _ = 1, 5 do async.sleep(0) end
  lu.assertEquals(t:state(), "waiting")
  lu.assertEquals(#log, n)
end

function TestStaleWakes:test_stopped_sleep_does_not_wake_next_wait()
  local log, add = support.log()
  local f2 = async.future()
  local t = started(function()
    pcall(async.sleep, 0.005)           -- cancelled
    add(f2:await())
  end)
  t:cancel()
  async.sleep(0)
  async.sleep(0.02)                     -- past the first sleep's deadline
  assert_still_waiting(t, log, 0)
  f2:resolve("right")
  t:await()
  lu.assertEquals(log, {"right"})
end

function TestStaleWakes:test_sleep_after_cancelled_sleep_is_full_length()
  -- the first sleep's timer must not end the second sleep early
  local log, add = support.log()
  local t = started(function()
    pcall(async.sleep, 0.005)
    add("caught")
    async.sleep(10)
    add("woken early")
  end)
  t:cancel()
  async.sleep(0.02)
  lu.assertEquals(log, {"caught"})
  lu.assertEquals(t:state(), "waiting")
  t:cancel()
  expect_cancelled(t)
  lu.assertEquals(log, {"caught"})
end

function TestStaleWakes:test_awaited_task_finishing_late()
  -- t awaits x; t is cancelled (so is x); x catches, finishes later with a
  -- value; t has moved on to f2 and must not see x's value
  local log, add = support.log()
  local gate = async.future()
  local x = async.spawn(function()
    pcall(async.sleep, 10)
    async.shield(gate)                  -- finish only when told
    return "x value"
  end)
  local f2 = async.future()
  local t = started(function()
    pcall(x.await, x)
    add(f2:await())
  end)
  t:cancel()
  async.sleep(0)
  assert_still_waiting(t, log, 0)
  gate:resolve()
  lu.assertEquals(x:await(), "x value")
  assert_still_waiting(t, log, 0)
  f2:resolve("right")
  t:await()
  lu.assertEquals(log, {"right"})
end

function TestStaleWakes:test_future_resolved_after_wait_cancelled()
  -- t waits on f1 through async.wait (which does not cancel f1); after the
  -- cancellation it waits on f2; resolving f1 must not resume it
  local log, add = support.log()
  local f1, f2 = async.future(), async.future()
  local t = started(function()
    pcall(async.wait, {f1})
    add(f2:await())
  end)
  t:cancel()
  async.sleep(0)
  assert_still_waiting(t, log, 0)
  lu.assertTrue(f1:resolve("wrong"))
  assert_still_waiting(t, log, 0)
  f2:resolve("right")
  t:await()
  lu.assertEquals(log, {"right"})
end

function TestStaleWakes:test_shielded_task_finishing_after_cancel()
  local log, add = support.log()
  local gate, f2 = async.future(), async.future()
  local x = async.spawn(function() gate:await() return "x" end)
  local t = started(function()
    pcall(async.shield, x)
    add(f2:await())
  end)
  t:cancel()
  async.sleep(0)
  assert_still_waiting(t, log, 0)
  gate:resolve()
  lu.assertEquals(x:await(), "x")
  assert_still_waiting(t, log, 0)
  f2:resolve("right")
  t:await()
  lu.assertEquals(log, {"right"})
end

function TestStaleWakes:test_gather_children_finishing_after_cancel()
  local log, add = support.log()
  local gate, f2 = async.future(), async.future()
  -- the children catch their cancellation and end normally later
  local function child()
    pcall(async.sleep, 10)
    async.shield(gate)
    return "late"
  end
  local t = started(function()
    pcall(async.gather, child, child)
    add(f2:await())
  end)
  async.sleep(0)
  t:cancel()
  async.sleep(0)
  assert_still_waiting(t, log, 0)
  gate:resolve()
  assert_still_waiting(t, log, 0)
  f2:resolve("right")
  t:await()
  lu.assertEquals(log, {"right"})
end

function TestStaleWakes:test_gather_children_failing_after_cancel()
  -- children that fail during their cleanup, after the gathering task was
  -- cancelled and moved on, must not cancel it later
  local log, add = support.log()
  local gate, f2 = async.future(), async.future()
  local function child()
    pcall(async.sleep, 10)
    async.shield(gate)
    error("failed in cleanup", 0)
  end
  local a, b = async.spawn(child), async.spawn(child)
  local t = started(function()
    pcall(async.gather, a, b)
    local ok, v = pcall(f2.await, f2)
    add(ok and v or ("raised: " .. tostring(v)))
  end)
  async.sleep(0)
  t:cancel()
  async.sleep(0)
  assert_still_waiting(t, log, 0)
  gate:resolve()
  pcall(a.await, a); pcall(b.await, b)
  assert_still_waiting(t, log, 0)
  f2:resolve("right")
  t:await()
  lu.assertEquals(log, {"right"})
end

function TestStaleWakes:test_timeout_fired_while_ready_is_not_raised_later()
  -- the deadline passes while the block is woken but not yet run; the block
  -- then returns; the pending cancellation must be withdrawn
  for _, d in ipairs {0.001, 0.002, 0.003} do
    local t = async.spawn(function()
      local r = async.timeout(d, function()
        local t0 = async.time()
        while async.time() < t0 + d + 0.002 do end   -- past the deadline, no wait
        async.sleep(0)                               -- timer fires, we are ready
        async.sleep(0)
        return "block done"
      end)
      async.sleep(0.002)                -- must not raise
      return r
    end)
    local ok, v = pcall(t.await, t)
    lu.assertTrue(ok, tostring(v))
    lu.assertEquals(v, "block done")
  end
end

support.run(...)
