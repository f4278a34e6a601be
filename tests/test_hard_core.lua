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

support.run(...)
