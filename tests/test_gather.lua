-- tests/test_gather.lua: gather, settle, wait, as_completed, wait_for.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"

-- A task that returns v once gate (a future) is resolved.
local function gated(gate, v)
  return async.spawn(function() gate:await() return v end)
end

-- A task that logs and re-raises its cancellation; `add` logs.
local function cancellable(add, name)
  return async.spawn(function()
    local ok, err = pcall(async.sleep, 10)
    add(name .. (async.is_cancelled(err) and " cancelled" or " not cancelled"))
    error(err, 0)
  end)
end

-- Awaits t expecting it cancelled.
local function assert_cancelled(t)
  local ok, err = pcall(t.await, t)
  lu.assertFalse(ok)
  lu.assertTrue(async.is_cancelled(err), tostring(err))
  lu.assertEquals(t:state(), "cancelled")
end

-- Runs fn under a guard so a lost wake-up fails the test instead of
-- hanging (or deadlocking) the whole suite. 0.5 s is far beyond what
-- the guarded code needs (a few ms of sleeps).
local function guarded(fn, ...)
  local ok, err = pcall(async.timeout, 0.5, fn, ...)
  if not ok and async.is_timeout(err) then
    error("lost wake-up: still waiting after 0.5 s", 2)
  end
  if not ok then error(err, 0) end
  return err
end

------------------------------------------------------------ gather

TestGather = support.suite {}

function TestGather:test_variadic_tasks_futures_functions()
  local f = async.future()
  async.call_later(0.002, function() f:resolve("future") end)
  local a = async.spawn(function() async.sleep(0.001) return "task" end)
  local r = async.gather(a, f, function() return "function" end)
  lu.assertEquals(r, {n = 3, "task", "future", "function"})
end

function TestGather:test_list_form()
  local r = async.gather({
    function() async.sleep(0.001) return 1 end,
    function() return 2 end,
  })
  lu.assertEquals(r, {n = 2, 1, 2})
end

function TestGather:test_list_with_n_and_holes()
  -- a list with n: nil holes are bad items, reported by index
  local ok, err = pcall(async.gather, {n = 2, function() end})
  lu.assertFalse(ok)
  lu.assertStrContains(err, "item 2 is a nil")
end

function TestGather:test_results_in_argument_order_not_completion_order()
  local g1, g2, g3 = async.future(), async.future(), async.future()
  local a, b, c = gated(g1, "a"), gated(g2, "b"), gated(g3, "c")
  local t = async.spawn(function() return async.gather(a, b, c) end)
  async.sleep(0)
  g3:resolve(); async.sleep(0)
  g1:resolve(); async.sleep(0)
  g2:resolve()
  lu.assertEquals(t:await(), {n = 3, "a", "b", "c"})
end

function TestGather:test_first_result_of_each()
  local r = async.gather(function() return 1, 2, 3 end, function() return nil, "x" end)
  lu.assertEquals(r.n, 2)
  lu.assertEquals(r[1], 1)
  lu.assertNil(r[2])
end

function TestGather:test_nil_results_counted_by_n()
  local r = async.gather(function() return nil end, function() return "last" end)
  lu.assertEquals(r.n, 2)
  lu.assertNil(r[1])
  lu.assertEquals(r[2], "last")
end

function TestGather:test_functions_are_spawned_as_tasks()
  local seen = {}
  async.gather(function() seen[1] = async.current() end,
               function() seen[2] = async.current() end)
  lu.assertNotNil(seen[1])
  lu.assertNotNil(seen[2])
  lu.assertNotIs(seen[1], seen[2])
  lu.assertNotIs(seen[1], async.current())
end

function TestGather:test_zero_items()
  lu.assertEquals(async.gather(), {n = 0})
  lu.assertEquals(async.gather({}), {n = 0})
end

function TestGather:test_already_done_items()
  local f = async.future()
  f:resolve("f")
  local t = async.spawn(function() return "t" end)
  t:await()
  lu.assertEquals(async.gather(f, t), {n = 2, "f", "t"})
end

function TestGather:test_first_error_cancels_others_and_is_raised()
  local log, add = support.log()
  local e = {code = "B"}
  local a = cancellable(add, "a")
  local b = async.spawn(function() async.sleep(0.002) error(e) end)
  local c = cancellable(add, "c")
  local ok, err = pcall(async.gather, a, b, c)
  lu.assertFalse(ok)
  lu.assertIs(err, e)
  assert_cancelled(a)
  assert_cancelled(c)
  lu.assertEquals(b:state(), "failed")
  table.sort(log)
  lu.assertEquals(log, {"a cancelled", "c cancelled"})
end

function TestGather:test_only_the_first_error_is_raised()
  local g = async.future()
  local first = async.spawn(function() g:await() error("first", 0) end)
  local second = async.spawn(function()
    local ok, err = pcall(async.sleep, 10)
    error("second, from cleanup", 0)   -- fails while being cancelled
  end)
  local t = async.spawn(function() return async.gather(first, second) end)
  async.sleep(0)
  g:resolve()
  local ok, err = pcall(t.await, t)
  lu.assertFalse(ok)
  lu.assertEquals(err, "first")
  pcall(second.await, second)
  lu.assertEquals(second:error(), "second, from cleanup")
end

function TestGather:test_error_of_already_failed_item()
  local bad = async.spawn(function() error("early", 0) end)
  pcall(bad.await, bad)
  local log, add = support.log()
  local other = cancellable(add, "other")
  local ok, err = pcall(async.gather, other, bad)
  lu.assertFalse(ok)
  lu.assertEquals(err, "early")
  assert_cancelled(other)
end

function TestGather:test_rejected_future_is_an_error()
  local f = async.future()
  local a = async.spawn(function() async.sleep(10) end)
  async.call_soon(function() f:reject("rejected") end)
  local ok, err = pcall(async.gather, a, f)
  lu.assertFalse(ok)
  lu.assertEquals(err, "rejected")
  assert_cancelled(a)
end

function TestGather:test_error_traceback_chains_the_child()
  local child = async.spawn(function()
    local function gathered_child_fails() error("child failed") end
    async.sleep(0)
    gathered_child_fails()
  end)
  child:set_name("gathered")
  local t = async.spawn(function() return async.gather(child) end)
  pcall(t.await, t)
  local tb = t:traceback()
  lu.assertStrContains(tb, "re-raised from gathered")
  lu.assertStrContains(tb, "gathered_child_fails")
end

function TestGather:test_cancelling_gatherer_cancels_children()
  local log, add = support.log()
  local a, b = cancellable(add, "a"), cancellable(add, "b")
  local t = async.spawn(function() return async.gather(a, b) end)
  async.sleep(0)
  t:cancel()
  assert_cancelled(t)
  assert_cancelled(a)
  assert_cancelled(b)
  table.sort(log)
  lu.assertEquals(log, {"a cancelled", "b cancelled"})
end

function TestGather:test_cancelling_gatherer_cancels_spawned_functions()
  local log, add = support.log()
  local t = async.spawn(function()
    return async.gather(function()
      local ok, err = pcall(async.sleep, 10)
      add(async.is_cancelled(err) and "fn cancelled" or "fn not cancelled")
      error(err, 0)
    end)
  end)
  async.sleep(0)
  async.sleep(0)
  t:cancel()
  assert_cancelled(t)
  for _ = 1, 3 do async.sleep(0) end
  lu.assertEquals(log, {"fn cancelled"})
end

function TestGather:test_bad_item_error_message()
  local ok, err = pcall(async.gather, async.spawn(function() end), 42)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "gather: item 2 is a number")
  lu.assertStrContains(err, "task, future or function expected")
  ok, err = pcall(async.gather, {"x"})
  lu.assertFalse(ok)
  lu.assertStrContains(err, "gather: item 1 is a string")
  for _ = 1, 2 do async.sleep(0) end    -- the task above is done
end

function TestGather:test_bad_item_starts_nothing()
  -- an argument error must leave nothing started: the function before the
  -- bad item is not spawned
  local ran = false
  local ok, err = pcall(async.gather, function() ran = true end, 42)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "item 2 is a number")
  async.sleep(0)
  lu.assertFalse(ran, "gather spawned a function before raising its argument error")
end

function TestGather:test_same_task_twice()
  local t = async.spawn(function() async.sleep(0.001) return "twice" end)
  lu.assertEquals(async.gather(t, t), {n = 2, "twice", "twice"})
end

function TestGather:test_nil_error_is_still_a_failure()
  -- error(nil) (or error()) fails a task with a nil error value: gather
  -- must treat it as the first failure and cancel the others
  local log, add = support.log()
  local bad = async.spawn(function() async.sleep(0.001) error(nil) end)
  local other = cancellable(add, "other")
  local ok, err = pcall(async.gather, bad, other)
  lu.assertFalse(ok)
  lu.assertNil(err)
  lu.assertEquals(bad:state(), "failed")
  async.sleep(0)
  lu.assertNotEquals(other:state(), "waiting", "gather did not cancel the other item")
  assert_cancelled(other)
end

function TestGather:test_wait_for_future_timeout_cancels_it()
  local f = async.future()
  local ok, err = pcall(async.wait_for, 0.001, f)
  lu.assertFalse(ok)
  lu.assertTrue(async.is_timeout(err))
  lu.assertTrue(f:cancelled())
end

------------------------------------------------------------ settle

TestSettle = support.suite {}

function TestSettle:test_results_and_errors_by_index()
  local e = {}
  local results, errors = async.settle(
    function() async.sleep(0.001) return "one" end,
    function() error(e) end,
    function() return "three" end)
  lu.assertEquals(results.n, 3)
  lu.assertEquals(errors.n, 3)
  lu.assertEquals(results[1], "one")
  lu.assertNil(results[2])
  lu.assertEquals(results[3], "three")
  lu.assertNil(errors[1])
  lu.assertIs(errors[2], e)
  lu.assertNil(errors[3])
end

function TestSettle:test_never_raises_and_does_not_cancel_others()
  local g = async.future()
  local slow = gated(g, "slow")
  local bad = async.spawn(function() error("bad", 0) end)
  async.call_later(0.002, function() g:resolve() end)
  local results, errors = async.settle({slow, bad})
  lu.assertEquals(results[1], "slow")
  lu.assertEquals(errors[2], "bad")
  lu.assertEquals(slow:state(), "done")
end

function TestSettle:test_cancelled_child_is_an_error()
  local t = async.spawn(function() async.sleep(10) end)
  async.call_later(0.001, function() t:cancel("gone") end)
  local results, errors = async.settle(t)
  lu.assertNil(results[1])
  lu.assertTrue(async.is_cancelled(errors[1]))
end

function TestSettle:test_nil_error_does_not_make_settle_raise()
  local bad = async.spawn(function() error(nil) end)
  local good = async.spawn(function() return "good" end)
  local ok, results, errors = pcall(async.settle, bad, good)
  lu.assertTrue(ok, "settle raised: " .. tostring(results))
  lu.assertNil(results[1])
  lu.assertNil(errors[1])               -- the error value is nil
  lu.assertEquals(results[2], "good")
  lu.assertEquals(bad:state(), "failed")
end

function TestSettle:test_zero_items()
  local results, errors = async.settle()
  lu.assertEquals(results, {n = 0})
  lu.assertEquals(errors, {n = 0})
end

function TestSettle:test_cancelling_settler_cancels_children()
  local log, add = support.log()
  local a = cancellable(add, "a")
  local t = async.spawn(function() return async.settle(a) end)
  async.sleep(0)
  t:cancel()
  assert_cancelled(t)
  assert_cancelled(a)
end

function TestSettle:test_bad_item()
  local ok, err = pcall(async.settle, true)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "settle: item 1 is a boolean")
end

------------------------------------------------------------ wait

TestWait = support.suite {}

function TestWait:test_all_is_default()
  local a = async.spawn(function() async.sleep(0.002) return 1 end)
  local b = async.spawn(function() return 2 end)
  local done, pending = async.wait({a, b})
  lu.assertEquals(#done, 2)
  lu.assertEquals(#pending, 0)
  lu.assertIs(done[1], a)               -- list order
  lu.assertIs(done[2], b)
end

function TestWait:test_first()
  local g = async.future()
  local slow = gated(g, "slow")
  local fast = async.spawn(function() async.sleep(0.001) return "fast" end)
  local done, pending = async.wait({slow, fast}, {return_when = "first"})
  lu.assertEquals(#done, 1)
  lu.assertIs(done[1], fast)
  lu.assertEquals(#pending, 1)
  lu.assertIs(pending[1], slow)
  lu.assertEquals(slow:state(), "waiting")   -- not cancelled
  g:resolve()
  lu.assertEquals(slow:await(), "slow")
end

function TestWait:test_first_with_an_already_done_item()
  local done_t = async.spawn(function() return 1 end)
  done_t:await()
  local g = async.future()
  local slow = gated(g, "slow")
  local done, pending = async.wait({slow, done_t}, {return_when = "first"})
  lu.assertEquals(#done, 1)
  lu.assertIs(done[1], done_t)
  lu.assertIs(pending[1], slow)
  g:resolve()
  slow:await()
end

function TestWait:test_first_error_returns_at_the_first_failure()
  local g = async.future()
  local slow = gated(g, "slow")
  local ok_fast = async.spawn(function() async.sleep(0.001) return "fine" end)
  local bad = async.spawn(function() async.sleep(0.003) error("bad", 0) end)
  local done, pending = async.wait({slow, ok_fast, bad}, {return_when = "first_error"})
  lu.assertEquals(#done, 2)
  lu.assertIs(done[1], ok_fast)
  lu.assertIs(done[2], bad)
  lu.assertEquals(#pending, 1)
  lu.assertIs(pending[1], slow)
  lu.assertEquals(bad:error(), "bad")
  g:resolve()
  slow:await()
end

function TestWait:test_first_error_without_errors_waits_for_all()
  local a = async.spawn(function() async.sleep(0.001) return 1 end)
  local b = async.spawn(function() async.sleep(0.002) return 2 end)
  local done, pending = async.wait({a, b}, {return_when = "first_error"})
  lu.assertEquals(#done, 2)
  lu.assertEquals(#pending, 0)
end

function TestWait:test_timeout_returns_done_and_pending_without_cancelling()
  local g = async.future()
  local slow = gated(g, "slow")
  local fast = async.spawn(function() return "fast" end)
  local done, pending = async.wait({slow, fast}, {timeout = 0.002})
  lu.assertEquals(#done, 1)
  lu.assertIs(done[1], fast)
  lu.assertEquals(#pending, 1)
  lu.assertIs(pending[1], slow)
  lu.assertFalse(slow:done())
  g:resolve()
  lu.assertEquals(slow:await(), "slow")
  async.sleep(0.001)                    -- no cancellation leaked into us
end

function TestWait:test_failures_are_not_raised()
  local bad = async.spawn(function() error("bad", 0) end)
  local done, pending = async.wait({bad})
  lu.assertIs(done[1], bad)
  lu.assertEquals(#pending, 0)
  lu.assertEquals(bad:error(), "bad")
end

function TestWait:test_empty_list()
  local done, pending = async.wait({})
  lu.assertEquals(#done, 0)
  lu.assertEquals(#pending, 0)
  done, pending = async.wait({}, {return_when = "first"})
  lu.assertEquals(#done, 0)
end

function TestWait:test_bad_return_when()
  local ok, err = pcall(async.wait, {}, {return_when = "some"})
  lu.assertFalse(ok)
  lu.assertStrContains(err, "return_when")
  lu.assertStrContains(err, "some")
end

function TestWait:test_bad_arguments()
  local ok, err = pcall(async.wait, 5)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "list expected, got number")
  ok, err = pcall(async.wait, {}, {timeout = "soon"})
  lu.assertFalse(ok)
  lu.assertStrContains(err, "number expected")
  ok, err = pcall(async.wait, {7})
  lu.assertFalse(ok)
  lu.assertStrContains(err, "wait: item 1 is a number")
end

function TestWait:test_waiter_sees_items_done_in_order_of_a_shared_future()
  local f = async.future()
  local done, pending
  local t = async.spawn(function() done, pending = async.wait({f}) end)
  async.sleep(0)
  f:resolve()
  t:await()
  lu.assertIs(done[1], f)
end

------------------------------------------------------------ as_completed

-- On the virtual clock: completion order by sleeps of 2, 4 and 6 ms is then
-- exact (a loaded machine could arm the 2 ms sleep 4 ms after the 6 ms one).
TestAsCompleted = support.suite({}, {timeout = 3, virtual_clock = true})

function TestAsCompleted:test_order_matches_completion()
  local gates, items = {}, {}
  for i = 1, 3 do
    gates[i] = async.future()
    items[i] = gated(gates[i], i)
  end
  local got = {}
  local consumer = async.spawn(function()
    guarded(function()
      for t in async.as_completed(items) do got[#got + 1] = t:result() end
    end)
  end)
  for _, i in ipairs {2, 3, 1} do
    gates[i]:resolve()
    for _ = 1, 3 do async.sleep(0) end  -- the consumer takes it
  end
  local ok, err = pcall(consumer.await, consumer)
  lu.assertTrue(ok, tostring(err))
  lu.assertEquals(got, {2, 3, 1})
end

function TestAsCompleted:test_order_with_sleeps()
  local items = {}
  for i, d in ipairs {0.006, 0.002, 0.004} do
    items[i] = async.spawn(function() async.sleep(d) return i end)
  end
  local got = {}
  guarded(function()
    for t in async.as_completed(items) do got[#got + 1] = t:result() end
  end)
  lu.assertEquals(got, {2, 3, 1})
end

function TestAsCompleted:test_all_done_before_iterating()
  local items = {}
  for i = 1, 3 do items[i] = async.spawn(function() return i end) end
  for i = 1, 3 do items[i]:await() end
  local got = {}
  guarded(function()
    for t in async.as_completed(items) do got[#got + 1] = t:result() end
  end)
  table.sort(got)
  lu.assertEquals(got, {1, 2, 3})
end

function TestAsCompleted:test_failed_items_are_yielded_not_raised()
  local items = {
    async.spawn(function() async.sleep(0.001) error("bad", 0) end),
    async.spawn(function() async.sleep(0.003) return "good" end),
  }
  local got = {}
  guarded(function()
    for t in async.as_completed(items) do got[#got + 1] = t:error() or t:result() end
  end)
  lu.assertEquals(got, {"bad", "good"})
end

function TestAsCompleted:test_empty()
  for _ in async.as_completed({}) do lu.fail("nothing to yield") end
end

function TestAsCompleted:test_timeout_raises_timeout()
  local g = async.future()
  local fast = async.spawn(function() return "fast" end)
  local slow = gated(g, "slow")
  local got = {}
  local ok, err = pcall(function()
    for t in async.as_completed({slow, fast}, 0.003) do got[#got + 1] = t:result() end
  end)
  lu.assertFalse(ok)
  lu.assertTrue(async.is_timeout(err), tostring(err))
  lu.assertEquals(got, {"fast"})
  lu.assertFalse(slow:done())           -- not cancelled
  g:resolve()
  slow:await()
  async.sleep(0.001)                    -- nothing leaked
end

function TestAsCompleted:test_bad_arguments()
  lu.assertErrorMsgContains("as_completed: item 1 is a number", async.as_completed, {1})
  lu.assertErrorMsgContains("number expected", async.as_completed, {}, "x")
end

------------------------------------------------------------ wait_for

TestWaitFor = support.suite {}

function TestWaitFor:test_function_success_returns_values()
  local r = table.pack(async.wait_for(1, function(a, b)
    async.sleep(0.001)
    return a, nil, b
  end, "x", "y"))
  lu.assertEquals(r.n, 3)
  lu.assertEquals(r[1], "x")
  lu.assertEquals(r[3], "y")
end

function TestWaitFor:test_task_success_returns_values()
  local t = async.spawn(function() async.sleep(0.001) return 1, 2 end)
  lu.assertEquals({async.wait_for(1, t)}, {1, 2})
end

function TestWaitFor:test_future_success()
  local f = async.future()
  async.call_soon(function() f:resolve("f") end)
  lu.assertEquals(async.wait_for(1, f), "f")
end

function TestWaitFor:test_function_timeout()
  local seen
  local ok, err = pcall(async.wait_for, 0.002, function()
    local ok2, e = pcall(async.sleep, 10)
    seen = e
    error(e, 0)
  end)
  lu.assertFalse(ok)
  lu.assertTrue(async.is_timeout(err), tostring(err))
  lu.assertTrue(async.is_cancelled(seen))
end

function TestWaitFor:test_task_timeout_cancels_the_task()
  local log, add = support.log()
  local t = async.spawn(function()
    local ok, err = pcall(async.sleep, 10)
    add(async.is_cancelled(err) and "task cancelled" or "not")
    async.sleep(0.001)                  -- cleanup that waits
    add("cleanup done")
    error(err, 0)
  end)
  local ok, err = pcall(async.wait_for, 0.002, t)
  lu.assertFalse(ok)
  lu.assertTrue(async.is_timeout(err), tostring(err))
  -- wait_for waited for the task to finish its cleanup
  lu.assertTrue(t:done())
  lu.assertTrue(t:cancelled())
  lu.assertEquals(log, {"task cancelled", "cleanup done"})
end

function TestWaitFor:test_task_error_is_raised()
  local t = async.spawn(function() error("task failed", 0) end)
  local ok, err = pcall(async.wait_for, 1, t)
  lu.assertFalse(ok)
  lu.assertEquals(err, "task failed")
end

function TestWaitFor:test_bad_arguments()
  lu.assertErrorMsgContains("bad argument #1 to 'wait_for'", async.wait_for, "1", function() end)
  lu.assertErrorMsgContains("bad argument #2 to 'wait_for'", async.wait_for, 1, 5)
end

support.run(...)
