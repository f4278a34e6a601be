-- tests/test_hard_core.lua: regressions of issue 13 ("Hardening") in the
-- core and sync modules. Each test is named after the bug and says its
-- root cause; each failed (or crashed the host) before its fix.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"

-- Runs src as a script in a new lasync process (a crash must not take the
-- suite down) and asserts it ended normally, printing `want` on stdout.
local function run_ok(src, want)
  local r = support.lasync_run(src)
  lu.assertEquals(r.status, 0, "exit " .. r.status .. "; stderr: " .. r.stderr)
  if want then lu.assertStrContains(r.stdout, want) end
  return r
end

------------------------------------------------- item 1: await cycles

TestAwaitCycle = support.suite {}

-- Root cause: lasync__cancel cleared the task's wait record and then ran
-- the wait's cancel function, which cancels the awaited task; in a cycle
-- that comes back to the first task, still "waiting" but with a NULL wait
-- record, and dereferenced it (SIGSEGV, at the latest when the program's
-- end cancels every task). Now the task is woken before the wait's cancel
-- runs, and the await that would close a cycle is refused.
function TestAwaitCycle:test_two_tasks_awaiting_each_other_crash_at_program_end()
  local r = run_ok([[
    local a, b
    a = async.spawn(function() async.sleep(0) return b:await() end)
    b = async.spawn(function() async.sleep(0) return a:await() end)
    async.sleep(0.01)
    print("main ends")
  ]], "main ends")
  lu.assertStrContains(r.stderr, "a cycle of tasks awaiting each other")
end

function TestAwaitCycle:test_await_closing_a_cycle_is_refused()
  local a, b
  a = async.spawn(function() async.sleep(0) return b:await() end)
  b = async.spawn(function() async.sleep(0) return a:await() end)
  local ok, err = pcall(b.await, b)
  lu.assertFalse(ok)
  lu.assertStrContains(tostring(err), "already awaits this task")
  local ok2, err2 = pcall(a.await, a)    -- a re-raised b's error
  lu.assertFalse(ok2)
  lu.assertEquals(err2, err)
end

function TestAwaitCycle:test_three_task_cycle_refused()
  local t = {}
  for i = 1, 3 do
    t[i] = async.spawn(function() async.sleep(0) return t[i % 3 + 1]:await() end)
  end
  for i = 1, 3 do lu.assertFalse(pcall(t[i].await, t[i])) end
  lu.assertStrContains(tostring(t[3]:error()), "already awaits this task")
end

function TestAwaitCycle:test_cycle_through_wait_for_refused()
  local a, b
  a = async.spawn(function() async.sleep(0) return async.wait_for(5, b) end)
  b = async.spawn(function() async.sleep(0) return async.wait_for(5, a) end)
  lu.assertFalse(pcall(a.await, a))
  lu.assertStrContains(tostring(b:error()), "already awaits this task")
end

function TestAwaitCycle:test_cycles_crash_at_program_end_3_and_wait_for()
  run_ok([[
    local t = {}
    for i = 1, 3 do
      t[i] = async.spawn(function() async.sleep(0) return t[i % 3 + 1]:await() end)
    end
    local a, b
    a = async.spawn(function() async.sleep(0) return async.wait_for(5, b) end)
    b = async.spawn(function() async.sleep(0) return async.wait_for(5, a) end)
    async.sleep(0.01)
    print("main ends")
  ]], "main ends")
end

-- Cycles the await check cannot see (through gather's watch and shield's
-- future) deadlock, as in asyncio, but the end of the program cancels
-- them like any waiting task. (Coverage: these did not crash before.)
function TestAwaitCycle:test_cycle_through_gather_and_shield_cancelled_at_end()
  run_ok([[
    local a, b
    a = async.spawn(function() async.sleep(0) return async.gather(b) end)
    b = async.spawn(function() async.sleep(0) return async.shield(a) end)
    async.sleep(0.01)
    print("main ends")
  ]], "main ends")
end

-- Cancelling the head of a chain of awaits cancels every task of it (the
-- same path as above, without a cycle).
function TestAwaitCycle:test_cancel_chain_of_awaits()
  local c = async.spawn(async.sleep, 10)
  local b = async.spawn(function() return c:await() end)
  local a = async.spawn(function() return b:await() end)
  async.sleep(0)
  a:cancel()
  for _, t in ipairs{a, b, c} do
    lu.assertFalse(pcall(t.await, t))
    lu.assertTrue(t:cancelled())
  end
end

------------------------------------------- items 10, 11, 12: lost errors

TestLostErrors = support.suite {}

-- Root cause: timeout(0, fn) armed a timer due "now"; the timer fires on
-- the loop's next round, after the task's sleep(0) already came back, so
-- the block ran to its end. A deadline already due now requests the
-- cancellation at once, raised at the block's first wait.
function TestLostErrors:test_timeout_zero_with_only_sleep0_not_cancelled()
  local after = false
  local ok, err = pcall(async.timeout, 0, function() async.sleep(0) after = true end)
  lu.assertFalse(ok)
  lu.assertTrue(async.is_timeout(err))
  lu.assertFalse(after)
  ok, err = pcall(async.timeout, -1, function() async.sleep(0) end)
  lu.assertTrue(async.is_timeout(err))
  -- a block that does not wait still returns, and nothing stays pending
  lu.assertEquals(async.timeout(0, function() return 7 end), 7)
  async.sleep(0)
end

-- Root cause: wait_for(sec, task) waited for the cancelled task's cleanup
-- and then raised its own Timeout unconditionally; the task's cleanup
-- error was dropped (reported later as "nobody awaited it").
function TestLostErrors:test_wait_for_task_drops_cleanup_error()
  local t = async.spawn(function()
    local ok, e = pcall(async.sleep, 10)
    assert(not ok and async.is_cancelled(e))
    error("cleanup failed", 0)
  end)
  local ok, err = pcall(async.wait_for, 0.001, t)
  lu.assertFalse(ok)
  lu.assertEquals(err, "cleanup failed")
  lu.assertEquals(t:state(), "failed")
  -- the function form did so already
  ok, err = pcall(async.wait_for, 0.001, function()
    pcall(async.sleep, 10)
    error("cleanup failed", 0)
  end)
  lu.assertEquals(err, "cleanup failed")
end

-- Root cause: the scope raised a child's failure only when its own error
-- was nil or its "a task failed" Cancelled; a Cancelled from outside (the
-- task's, a deadline's) won, and the child, observed by the scope's done
-- callback, was never reported. Now a child's failure wins over any
-- cancellation (asyncio's TaskGroup rule), and a failure that loses to
-- another error is reported on stderr.
function TestLostErrors:test_scope_cancelled_drops_child_cleanup_error()
  local started = async.event()
  local outer = async.spawn(function()
    return async.scope(function(g)
      g:spawn(function()
        started:set()
        pcall(async.sleep, 10)
        error("child cleanup failed", 0)
      end)
      async.sleep(10)
    end)
  end)
  started:wait()
  outer:cancel()
  local ok, err = pcall(outer.await, outer)
  lu.assertFalse(ok)
  lu.assertEquals(err, "child cleanup failed")
  -- the same under a deadline: the child's error, not the Timeout
  ok, err = pcall(async.timeout, 0.001, async.scope, function(g)
    g:spawn(function() pcall(async.sleep, 10) error("late", 0) end)
    async.sleep(10)
  end)
  lu.assertEquals(err, "late")
end

function TestLostErrors:test_scope_second_child_failure_reported()
  local r = run_ok([[
    local ok, err = pcall(async.scope, function(g)
      g:spawn(function() pcall(async.sleep, 10) error("second", 0) end)
      g:spawn(function() async.sleep(0) error("first", 0) end)
    end)
    assert(not ok and err == "first", tostring(err))
    ok, err = pcall(async.scope, function(g)
      g:spawn(function() pcall(async.sleep, 10) error("child", 0) end)
      async.sleep(0)
      error("body", 0)
    end)
    assert(not ok and err == "body", tostring(err))
    print("ok")
  ]], "ok")
  lu.assertStrContains(r.stderr, "second")
  lu.assertStrContains(r.stderr, "its scope raised another task's error")
  lu.assertStrContains(r.stderr, "child")
  lu.assertStrContains(r.stderr, "its scope raised the body's error")
end

------------------------------------------- item 2: metamethods check self

TestSelfChecks = support.suite {}

-- Root cause: the __gc (and Thread's __tostring) of Executor, Stream,
-- Thread/Channel, Listener, Proto, Watch and the unseen-failure Task cast
-- argument 1 with lua_touserdata and no type check, so a string or another
-- type's object was read (and freed) as their struct. Each now checks.
function TestSelfChecks:test_metamethods_of_native_types_crash_on_foreign_objects()
  local ex = async.executor{workers = 1}
  local th = async.thread.spawn(function(ch) ch:recv() end)
  local srv = async.net.listen("127.0.0.1", 0, function() end)
  local conn = async.net.connect("127.0.0.1", select(2, srv:address()))
  local lock = async.lock()
  local foreign = {"a string", 42, {}, lock, ex, th, conn, srv.listener}
  local checks = {
    {getmetatable(ex).__gc, ex}, {getmetatable(ex).__close, ex},
    {getmetatable(ex).__tostring, ex},
    {getmetatable(conn).__gc, conn}, {getmetatable(conn).__tostring, conn},
    {getmetatable(th).__gc, th}, {getmetatable(th).__tostring, th},
    {getmetatable(srv.listener).__gc, srv.listener},
    {debug.getregistry()["lasync.Watch"].__gc, nil},
  }
  for _, c in ipairs(checks) do
    for _, y in ipairs(foreign) do
      if getmetatable(y) ~= getmetatable(c[2]) then
        local ok, err = pcall(c[1], y)
        lu.assertFalse(ok, "accepted " .. tostring(y))
        lu.assertStrContains(tostring(err), "expected")
      end
    end
  end
  conn:close() srv:close() th:close() th:join() ex:close()
end

-- Root cause: the unseen-failure Task metatable's __gc (reachable as
-- core.TaskUnseen.__gc) read any userdata as a task.
function TestSelfChecks:test_task_gc_on_foreign_value()
  local gc = require("async.core").TaskUnseen.__gc
  lu.assertFalse(pcall(gc, "x"))
  lu.assertFalse(pcall(gc, async.lock()))
end

-- Root cause: Lua-implemented methods indexed their self without a check
-- ("attempt to index a number value", or File.__gc closing the descriptor
-- of a stray table). async.class.check_self checks every one.
function TestSelfChecks:test_lua_methods_with_wrong_self_fail_late()
  local cases = {
    {require("async.fs").File.read, 5, "lasync.File expected, got number"},
    {require("async.fs").File.__gc, {fd = 1}, "lasync.File expected, got table"},
    {require("async.net").Server.close, {}, "lasync.Server expected, got table"},
    {require("async.process").Process.wait, "x", "lasync.Process expected, got string"},
  }
  for _, c in ipairs(cases) do
    local ok, err = pcall(c[1], c[2])
    lu.assertFalse(ok)
    lu.assertStrContains(err, "bad self to")
    lu.assertStrContains(err, c[3])
  end
  local g
  async.scope(function(group) g = group end)
  local ok, err = pcall(g.spawn, 5, print)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "lasync.Scope expected, got number")
end

--------------------------------------------- item 3: bounded counters

TestCounters = support.suite {}

-- Root cause: sem_release did s->value++ with no bound: signed overflow
-- (UBSan aborts; a release build wraps negative, then locked() is false
-- and acquire blocks).
function TestCounters:test_semaphore_release_overflows()
  local s = async.semaphore(math.maxinteger)
  local ok, err = pcall(s.release, s)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "release: the semaphore's value would exceed")
  lu.assertEquals(s:value(), math.maxinteger)
  lu.assertFalse(s:locked())
  s:acquire()
  lu.assertEquals(s:value(), math.maxinteger - 1)
end

-- Root cause: core.watch and core.first_results sized a userdata or
-- table by an unchecked count: -1 asked for 64 GB (ASan aborted).
function TestCounters:test_watch_count_unbounded()
  local core = require "async.core"
  local ok, err = pcall(core.first_results, {}, -1)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "count must be 0 .. the length of the list")
  ok, err = pcall(core.watch, {}, 2^31)
  lu.assertStrContains(err, "count must be 0 .. the length of the list")
end

-- Root cause: the virtual clock converted any jump or advance to
-- nanoseconds as uint64_t: inf or 1e300 is undefined behaviour, and
-- large ones wrapped the clock.
function TestCounters:test_virtual_clock_advance_overflows()
  local core = require "async.core"
  lu.assertFalse(pcall(core.clock, "virtual", math.huge))
  lu.assertFalse(pcall(core.clock, "virtual", 0 / 0))
  core.clock("virtual")
  local ok, err = pcall(core.advance, math.huge)
  local ok2 = pcall(core.advance, 1e300)
  core.clock("real")
  lu.assertFalse(ok)
  lu.assertStrContains(err, "must be under 1e9 seconds")
  lu.assertFalse(ok2)
end

------------------------------------------- item 13: early, clear errors

TestEarlyErrors = support.suite {}

-- Root cause: a put inside `less` ran the heap's sift again, whose less
-- put again... until "C stack overflow"; a close inside `less` let the
-- put that was comparing go on into the closed queue. Now the queue is
-- busy while less runs, and a change raises the documented error.
function TestEarlyErrors:test_priority_queue_less_touches_its_queue()
  local q
  q = async.priority_queue(function(a, b) q:put_nowait(0) return a < b end)
  q:put_nowait(1)
  local ok, err = pcall(q.put_nowait, q, 2)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "priority_queue: the less function changed the queue")
  lu.assertEquals(q:size(), 1)
  local q2
  q2 = async.priority_queue(function(a, b) q2:close() return a < b end)
  q2:put_nowait(1)
  ok, err = pcall(q2.put_nowait, q2, 2)
  lu.assertStrContains(err, "the less function changed the queue")
  lu.assertFalse(q2:closed())
  lu.assertEquals(q2:size(), 1)
end

-- Root cause: reject took any value, nil included, so awaiters got
-- error(nil): a failure with nothing to say.
function TestEarlyErrors:test_future_reject_nil_accepted()
  local f = async.future()
  local ok, err = pcall(function() return f:reject(nil) end)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "bad argument #1 to 'reject' (an error value expected, got nil)")
  lu.assertEquals(f:state(), "pending")
  lu.assertTrue(f:reject("real error"))
end

-- Root cause: with() checked only its table, and set the context before
-- calling fn: nil failed inside as "attempt to call a nil value".
function TestEarlyErrors:test_context_with_nil_fn_late_error()
  local ctx = require "async.context"
  local ok, err = pcall(ctx.with, {k = 1}, nil)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "bad argument #2 to 'with' (function expected, got nil)")
  lu.assertNil(ctx.get("k"))
end

-- Root cause: wait(list, 5) (asyncio's habit) indexed the number as the
-- options table: "attempt to index a number value (local 'opts')".
function TestEarlyErrors:test_wait_with_number_opts_unclear()
  local t = async.spawn(async.sleep, 0)
  local ok, err = pcall(async.wait, {t}, 5)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "bad argument #2 to 'wait' (options table expected, got number")
  lu.assertStrContains(err, "{timeout = sec}")
  t:await()
end

support.run(...)
