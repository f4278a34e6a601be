-- tests/test_queue.lua: async.queue, async.lifo_queue, async.priority_queue:
-- every method, FIFO fairness, hand-off under cancellation (no item lost or
-- duplicated), close, task_done/join, and the error objects.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"

-- Spawns fn and runs until it has reached its first wait.
local function started(fn, ...)
  local t = async.spawn(fn, ...)
  async.sleep(0)
  return t
end

local function expect_cancelled(t)
  local ok, err = pcall(t.await, t)
  lu.assertFalse(ok, "expected " .. tostring(t) .. " to be cancelled")
  lu.assertTrue(async.is_cancelled(err), "not a Cancelled error: " .. tostring(err))
  return err
end

-- Raises what pcall(fn, ...) raised, checking it is an error of class cls.
local function expect_error(cls, kind, fn, ...)
  local ok, err = pcall(fn, ...)
  lu.assertFalse(ok, "expected a " .. kind)
  lu.assertIs(getmetatable(err), cls, "not a " .. kind .. ": " .. tostring(err))
  lu.assertEquals(err.kind, kind)
  lu.assertEquals(tostring(err), kind .. ": " .. err.message)
  return err
end

local function drain(q)
  local out = {}
  while not q:empty() do out[#out + 1] = q:get_nowait() end
  return out
end

-- The three kinds of FIFO store: inline (small bounded), table ring
-- (unbounded, and bounded above the inline limit).
local function fifo_kinds()
  return {async.queue(), async.queue(3), async.queue(1000)}
end

---------------------------------------------------------------- basics

TestQueueBasics = support.suite {}

function TestQueueBasics:test_fifo_order_and_sizes()
  for _, q in ipairs(fifo_kinds()) do
    lu.assertTrue(q:empty())
    lu.assertFalse(q:full())
    q:put("a"); q:put("b"); q:put_nowait("c")
    lu.assertEquals(q:size(), 3)
    lu.assertFalse(q:empty())
    lu.assertEquals(q:full(), q:maxsize() == 3)
    lu.assertEquals(q:get(), "a")
    lu.assertEquals(q:get_nowait(), "b")
    lu.assertEquals(q:get(), "c")
    lu.assertTrue(q:empty())
  end
end

function TestQueueBasics:test_maxsize()
  lu.assertEquals(async.queue():maxsize(), 0)
  lu.assertEquals(async.queue(0):maxsize(), 0)
  lu.assertEquals(async.queue(7):maxsize(), 7)
  lu.assertEquals(async.lifo_queue(2):maxsize(), 2)
  lu.assertEquals(async.priority_queue(5):maxsize(), 5)
  lu.assertFalse(async.queue():full())
end

function TestQueueBasics:test_ring_wraps_and_grows()
  -- interleaved puts and gets move the ring's head around its end; an
  -- unbounded queue grows while its head is not at slot 1
  for _, q in ipairs(fifo_kinds()) do
    local n, expect = 0, 0
    for _ = 1, 200 do
      for _ = 1, (q:maxsize() == 3 and 3 or 5) do n = n + 1; q:put_nowait(n) end
      for _ = 1, (q:maxsize() == 3 and 3 or 4) do
        expect = expect + 1
        lu.assertEquals(q:get_nowait(), expect)
      end
    end
    for _, v in ipairs(drain(q)) do expect = expect + 1; lu.assertEquals(v, expect) end
    lu.assertEquals(expect, n)
  end
end

function TestQueueBasics:test_any_value_but_nil()
  local q = async.queue()
  local t = {}
  q:put(false); q:put(0); q:put(t); q:put("")
  lu.assertEquals(q:get(), false)
  lu.assertEquals(q:get(), 0)
  lu.assertIs(q:get(), t)
  lu.assertEquals(q:get(), "")
  local ok, err = pcall(function() q:put(nil) end)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "bad argument #1 to 'put' (an item cannot be nil)")
  ok, err = pcall(q.put_nowait, q)
  lu.assertStrContains(err, "an item cannot be nil")
  lu.assertEquals(q:size(), 0)
end

function TestQueueBasics:test_bad_arguments()
  local ok, err = pcall(async.queue, -1)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "maxsize must be 0 or more")
  ok, err = pcall(async.queue, 1.5)
  lu.assertStrContains(err, "number has no integer representation")
  ok, err = pcall(async.lifo_queue, "x")
  lu.assertStrContains(err, "number expected, got string")
  ok, err = pcall(async.priority_queue, 3, 4)
  lu.assertStrContains(err, "function expected, got number")
  local q = async.queue()
  ok, err = pcall(q.get, {})
  lu.assertStrContains(err, "lasync.Queue expected, got table")
  ok, err = pcall(q.size, io.stdout)
  lu.assertStrContains(err, "lasync.Queue expected")
end

function TestQueueBasics:test_tostring()
  local q = async.queue(4)
  q:put(1)
  lu.assertEquals(tostring(q), "Queue<1/4>")
  lu.assertEquals(tostring(async.queue()), "Queue<0>")
  lu.assertEquals(tostring(async.lifo_queue()), "LifoQueue<0>")
  local p = async.priority_queue(2)
  q:close()
  lu.assertEquals(tostring(q), "Queue<1/4, closed>")
  lu.assertEquals(tostring(p), "PriorityQueue<0/2>")
end

function TestQueueBasics:test_lifo_order()
  for _, q in ipairs{async.lifo_queue(), async.lifo_queue(4), async.lifo_queue(1000)} do
    for i = 1, 4 do q:put(i) end
    lu.assertEquals(drain(q), {4, 3, 2, 1})
    q:put("x"); q:put("y")
    lu.assertEquals(q:get(), "y")
    q:put("z")
    lu.assertEquals(drain(q), {"z", "x"})
  end
end

function TestQueueBasics:test_nowait_errors()
  local q = async.queue(1)
  local err = expect_error(async.QueueEmpty, "QueueEmpty", q.get_nowait, q)
  lu.assertEquals(err.message, "get_nowait: the queue is empty")
  q:put_nowait(1)
  err = expect_error(async.QueueFull, "QueueFull", q.put_nowait, q, 2)
  lu.assertEquals(err.message, "put_nowait: the queue is full")
  lu.assertEquals(q:size(), 1)
  lu.assertEquals(q:get_nowait(), 1)
end

function TestQueueBasics:test_nowait_outside_a_task()
  local q = async.queue()
  local done = async.future()
  async.call_soon(function()
    q:put_nowait("from a callback")
    local ok, err = pcall(q.get, async.queue())
    done:resolve(q:get(), ok, err)      -- get with an item does not wait
  end)
  local v, ok, err = done:await()
  lu.assertEquals(v, "from a callback")
  lu.assertFalse(ok)
  lu.assertStrContains(err, "get: not inside a task")
end

------------------------------------------------------------- priority

TestPriorityQueue = support.suite {}

function TestPriorityQueue:test_smallest_first()
  local q = async.priority_queue()
  local values = {}
  local x = 42
  for i = 1, 300 do
    x = (x * 1103515245 + 12345) % 2147483648
    values[i] = x % 1000
    q:put(values[i])
  end
  table.sort(values)
  lu.assertEquals(drain(q), values)
end

function TestPriorityQueue:test_custom_less_and_stability()
  -- equal priorities come out in the order they were put
  local q = async.priority_queue(function(a, b) return a.prio < b.prio end)
  local items = {}
  for i = 1, 40 do
    items[i] = {prio = i % 4, seq = i}
    q:put(items[i])
  end
  local prev
  for _, it in ipairs(drain(q)) do
    if prev then
      lu.assertTrue(prev.prio < it.prio or (prev.prio == it.prio and prev.seq < it.seq))
    end
    prev = it
  end
  lu.assertEquals(prev.prio, 3)
end

function TestPriorityQueue:test_largest_first_with_maxsize()
  local q = async.priority_queue(3, function(a, b) return a > b end)
  q:put(1); q:put(3); q:put(2)
  lu.assertTrue(q:full())
  lu.assertEquals(drain(q), {3, 2, 1})
end

function TestPriorityQueue:test_incomparable_item_leaves_queue_unchanged()
  local q = async.priority_queue()
  q:put(2); q:put(1); q:put(3)
  local ok, err = pcall(q.put, q, "two")
  lu.assertFalse(ok)
  lu.assertStrContains(err, "attempt to compare")
  lu.assertEquals(q:size(), 3)
  lu.assertEquals(q:unfinished(), 3)
  lu.assertEquals(drain(q), {1, 2, 3})
end

function TestPriorityQueue:test_failing_less_leaves_queue_unchanged()
  local fail = false
  local q = async.priority_queue(function(a, b)
    if fail then error("less failed", 0) end
    return a < b
  end)
  for _, v in ipairs{5, 1, 4, 2, 3} do q:put(v) end
  fail = true
  local ok, err = pcall(q.get, q)
  lu.assertFalse(ok)
  lu.assertEquals(err, "less failed")
  ok = pcall(q.put, q, 0)
  lu.assertFalse(ok)
  fail = false
  lu.assertEquals(drain(q), {1, 2, 3, 4, 5})
end

function TestPriorityQueue:test_less_that_changes_the_queue()
  -- the change is refused while a comparison runs (a put there recursed
  -- until the C stack overflowed, a close let the put go into a closed
  -- queue); the put that was comparing fails with the same error
  local q, once
  q = async.priority_queue(function(a, b)
    if (a == 99 or b == 99) and not once then once = true; q:get_nowait() end
    return a < b
  end)
  q:put(1); q:put(2)
  local ok, err = pcall(q.put, q, 99)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "the less function changed the queue")
  lu.assertEquals(q:size(), 2)
  lu.assertEquals(drain(q), {1, 2})
end

function TestPriorityQueue:test_less_cannot_wait()
  local q = async.priority_queue(function(a, b) async.sleep(0) return a < b end)
  q:put(1)
  local ok, err = pcall(q.put, q, 2)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "cannot wait here")
  lu.assertEquals(q:size(), 1)
end

function TestPriorityQueue:test_blocked_putter_whose_item_fails_less()
  -- a get moves the first blocked putter's item in; if less fails on it,
  -- that putter's put raises the error and the next putter is let in
  local q = async.priority_queue(2)
  q:put(5); q:put(6)
  local bad = started(function() q:put("x") end)
  local good = started(function() q:put(7) end)
  lu.assertEquals(q:get(), 5)             -- "x" vs 6 fails
  local ok, err = pcall(bad.await, bad)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "attempt to compare")
  lu.assertNil(good:await())
  lu.assertEquals(drain(q), {6, 7})
  lu.assertEquals(q:unfinished(), 3)
end

---------------------------------------------------------------- waiting

TestQueueWait = support.suite {}

function TestQueueWait:test_get_waits_for_put()
  local q = async.queue()
  local log, add = support.log()
  local t = started(function() add("get"); local v = q:get(); add("got " .. v) end)
  lu.assertEquals(t:state(), "waiting")
  add("put")
  q:put("x")                              -- handed straight to the getter
  lu.assertEquals(q:size(), 0)
  t:await()
  lu.assertEquals(log, {"get", "put", "got x"})
end

function TestQueueWait:test_put_waits_while_full()
  local q = async.queue(2)
  q:put(1); q:put(2)
  local t = started(function() q:put(3); return "put 3" end)
  lu.assertEquals(t:state(), "waiting")
  lu.assertEquals(q:get(), 1)             -- 3 moves in, the putter wakes
  lu.assertEquals(q:size(), 2)
  lu.assertEquals(t:await(), "put 3")
  lu.assertEquals(drain(q), {2, 3})
end

function TestQueueWait:test_getters_served_in_order()
  local q = async.queue()
  local got = {}
  local ts = {}
  for i = 1, 5 do ts[i] = started(function() got[i] = q:get() end) end
  for i = 1, 5 do q:put(i * 10) end
  for i = 1, 5 do ts[i]:await() end
  lu.assertEquals(got, {10, 20, 30, 40, 50})
end

function TestQueueWait:test_putters_served_in_order()
  for _, q in ipairs{async.queue(1), async.lifo_queue(1), async.priority_queue(1), async.queue(300)} do
    for _ = 1, q:maxsize() do q:put(0) end
    local ts = {}
    for i = 1, 4 do ts[i] = started(function() q:put(i) end) end
    local out = {}
    for _ = 1, q:maxsize() + 4 do out[#out + 1] = q:get() end
    for i = 1, 4 do ts[i]:await() end
    lu.assertEquals({table.unpack(out, q:maxsize() + 1)}, {1, 2, 3, 4})
  end
end

function TestQueueWait:test_fair_under_contention()
  -- 5 producers x 200 items through a queue of 3 to 4 consumers: every item
  -- arrives exactly once, and every task gets its turn
  local q = async.queue(3)
  local seen, count, per = {}, 0, {}
  local consumers, producers = {}, {}
  for c = 1, 4 do
    consumers[c] = async.spawn(function()
      for item in q:iter() do
        lu.assertNil(seen[item.id])
        seen[item.id] = true
        per[c] = (per[c] or 0) + 1
        count = count + 1
        if item.n % 7 == 0 then async.sleep(0) end
      end
    end)
  end
  for p = 1, 5 do
    producers[p] = async.spawn(function()
      for n = 1, 200 do q:put({p = p, n = n, id = p * 1000 + n}) end
    end)
  end
  async.gather(producers)
  q:close()
  async.gather(consumers)
  lu.assertEquals(count, 1000)
  for c = 1, 4 do lu.assertTrue(per[c] > 0, "consumer " .. c .. " starved") end
end

function TestQueueWait:test_blocked_putter_in_a_coroutine()
  -- the item of a put that waits stays on the stack of the coroutine that
  -- called put (here a generator inside the task), not the task's own
  local q = async.queue(1)
  q:put("first")
  local t = started(function()
    local gen = coroutine.wrap(function()
      q:put("from the generator")
      coroutine.yield("put done")
    end)
    return gen()
  end)
  lu.assertEquals(t:state(), "waiting")
  lu.assertEquals(q:get(), "first")
  lu.assertEquals(t:await(), "put done")
  lu.assertEquals(q:get(), "from the generator")
end

function TestQueueWait:test_waiting_needs_a_task()
  local q = async.queue(1)
  q:put(1)
  local done = async.future()
  async.call_soon(function()
    done:resolve(pcall(q.put, q, 2))
  end)
  local ok, err = done:await()
  lu.assertFalse(ok)
  lu.assertStrContains(err, "put: not inside a task")
  lu.assertEquals(q:size(), 1)
end

----------------------------------------------------------- cancellation

TestQueueCancel = support.suite {}

function TestQueueCancel:test_cancelled_getter_leaves_the_line()
  local q = async.queue()
  local a = started(function() return q:get() end)
  local b = started(function() return q:get() end)
  a:cancel()
  expect_cancelled(a)
  q:put("item")
  lu.assertEquals(b:await(), "item")
  lu.assertEquals(q:size(), 0)
end

function TestQueueCancel:test_cancel_then_put_in_the_same_step()
  -- the cancelled getter is removed at once: the put goes to the next one
  local q = async.queue()
  local a = started(function() return q:get() end)
  local b = started(function() return q:get() end)
  a:cancel()
  q:put("item")
  expect_cancelled(a)
  lu.assertEquals(b:await(), "item")
end

function TestQueueCancel:test_cancel_then_put_with_no_other_getter()
  local q = async.queue()
  local a = started(function() return q:get() end)
  a:cancel()
  q:put("kept")
  expect_cancelled(a)
  lu.assertEquals(q:size(), 1)
  lu.assertEquals(q:get(), "kept")
end

function TestQueueCancel:test_put_then_cancel_in_the_same_step()
  -- the getter was handed the item before the cancel: its get returns it,
  -- and the cancellation is raised at its next wait. Nothing is lost.
  local q = async.queue()
  local got
  local a = started(function()
    got = q:get()
    async.sleep(0)
    error("not reached")
  end)
  q:put("item")
  a:cancel()
  expect_cancelled(a)
  lu.assertEquals(got, "item")
  lu.assertEquals(q:size(), 0)
end

function TestQueueCancel:test_put_cancel_race_under_timeout()
  -- a get under a deadline that passes in the same step as the put: the
  -- item is either returned by the get or still in the queue, never lost
  for round = 1, 20 do
    local q = async.queue()
    local got, result
    local t = async.spawn(function()
      local ok, v = pcall(async.timeout, 0, q.get, q)
      if ok then got = v else result = v end
    end)
    for _ = 1, round % 3 do async.sleep(0) end
    q:put(round)
    t:await()
    if got ~= nil then
      lu.assertEquals(got, round)
      lu.assertEquals(q:size(), 0)
    else
      lu.assertTrue(async.is_timeout(result))
      lu.assertEquals(q:get_nowait(), round)
    end
  end
end

function TestQueueCancel:test_iter_getter_cancelled()
  local q = async.queue()
  local seen = {}
  local a = started(function() for v in q:iter() do seen[#seen + 1] = v end end)
  local b = started(function() return q:get() end)
  a:cancel()
  q:put(1)
  expect_cancelled(a)
  lu.assertEquals(b:await(), 1)
  lu.assertEquals(seen, {})
end

function TestQueueCancel:test_cancelled_putter_never_enqueues()
  local q = async.queue(1)
  q:put("first")
  local a = started(function() q:put("cancelled") end)
  local b = started(function() q:put("second") end)
  a:cancel()
  expect_cancelled(a)
  lu.assertEquals(q:get(), "first")
  b:await()
  lu.assertEquals(drain(q), {"second"})
  lu.assertEquals(q:unfinished(), 2)
end

function TestQueueCancel:test_putter_moved_in_then_cancelled()
  -- the get moved the item in and woke the putter; a cancel before it runs
  -- does not undo the put (the item is in the queue exactly once)
  local q = async.queue(1)
  q:put("first")
  local log, add = support.log()
  local a = started(function()
    q:put("second")
    add("put returned")
    async.sleep(0)
    add("not reached")
  end)
  lu.assertEquals(q:get(), "first")
  a:cancel()
  expect_cancelled(a)
  lu.assertEquals(log, {"put returned"})
  lu.assertEquals(drain(q), {"second"})
end

function TestQueueCancel:test_join_waiter_cancelled()
  local q = async.queue()
  q:put(1)
  local a = started(function() q:join() end)
  local b = started(function() q:join(); return "joined" end)
  a:cancel()
  expect_cancelled(a)
  q:get()
  q:task_done()
  lu.assertEquals(b:await(), "joined")
end

function TestQueueCancel:test_no_stale_wake_after_cancel()
  -- a getter cancelled and now waiting on something else is not woken, and
  -- not handed anything, by a later put
  local q = async.queue()
  local e = async.event()
  local t = started(function()
    local ok, err = pcall(q.get, q)
    lu.assertTrue(async.is_cancelled(err))
    return e:wait()
  end)
  t:cancel()
  async.sleep(0)
  lu.assertEquals(t:state(), "waiting")
  q:put("x")
  async.sleep(0)
  lu.assertEquals(t:state(), "waiting")
  lu.assertEquals(q:size(), 1)
  e:set()
  lu.assertTrue(t:await())
  lu.assertEquals(q:get(), "x")
end

function TestQueueCancel:test_pending_cancel_raised_by_a_waiting_get()
  local q = async.queue()
  local t = async.spawn(function()
    async.current():cancel("pending")
    local ok, err = pcall(q.get, q)      -- would wait: raises the cancel
    return ok, err
  end)
  local ok, err = t:await()
  lu.assertFalse(ok)
  lu.assertEquals(err.message, "pending")
  q:put(1)
  lu.assertEquals(q:size(), 1)
end

------------------------------------------------------------------ close

TestQueueClose = support.suite {}

function TestQueueClose:test_close_wakes_getters_and_ends_iterators()
  local q = async.queue()
  local g = started(function() return q:get() end)
  local seen = {}
  local it = started(function()
    for v in q:iter() do seen[#seen + 1] = v end
    return "loop ended"
  end)
  q:put(1)                                -- to g
  q:put(2)                                -- to the iterator
  async.sleep(0)
  lu.assertEquals(g:await(), 1)
  q:close()
  lu.assertTrue(q:closed())
  lu.assertEquals(it:await(), "loop ended")
  lu.assertEquals(seen, {2})

  local g2 = async.queue()
  local w = started(function() return g2:get() end)
  g2:close()
  local ok, err = pcall(w.await, w)
  lu.assertFalse(ok)
  lu.assertIs(getmetatable(err), async.QueueClosed)
  lu.assertEquals(tostring(err), "QueueClosed: get: the queue was closed")
end

function TestQueueClose:test_close_fails_waiting_putters()
  local q = async.queue(1)
  q:put(1)
  local p = started(function() q:put(2) end)
  q:close()
  local err = expect_error(async.QueueClosed, "QueueClosed", p.await, p)
  lu.assertEquals(err.message, "put: the queue was closed")
  lu.assertEquals(drain(q), {1})
end

function TestQueueClose:test_gets_drain_then_fail()
  local q = async.queue()
  q:put("a"); q:put("b")
  q:close()
  q:close()                               -- twice is harmless
  expect_error(async.QueueClosed, "QueueClosed", q.put, q, "c")
  expect_error(async.QueueClosed, "QueueClosed", q.put_nowait, q, "c")
  lu.assertEquals(q:get(), "a")
  lu.assertEquals(q:get_nowait(), "b")
  local err = expect_error(async.QueueClosed, "QueueClosed", q.get, q)
  lu.assertEquals(err.message, "get: the queue is closed")
  expect_error(async.QueueClosed, "QueueClosed", q.get_nowait, q)
  local n = 0
  for _ in q:iter() do n = n + 1 end
  lu.assertEquals(n, 0)
end

function TestQueueClose:test_iter_drains_what_is_left()
  local q = async.lifo_queue()
  for i = 1, 3 do q:put(i) end
  q:close()
  local seen = {}
  for v in q:iter() do seen[#seen + 1] = v end
  lu.assertEquals(seen, {3, 2, 1})
end

------------------------------------------------------- task_done and join

TestQueueJoin = support.suite {}

function TestQueueJoin:test_join_returns_at_once_when_nothing_is_unfinished()
  local q = async.queue()
  q:join()
  q:put(1)
  q:get()
  q:task_done()
  q:join()
  lu.assertEquals(q:unfinished(), 0)
end

function TestQueueJoin:test_join_waits_for_every_task_done()
  local q = async.queue(2)
  local log, add = support.log()
  local producer = async.spawn(function()
    for i = 1, 5 do q:put(i) end            -- 3 of them wait for room
  end)
  local joiner = started(function() q:join(); add("joined") end)
  local worker = async.spawn(function()
    for _ = 1, 5 do
      local v = q:get()
      async.sleep(0)
      add("done " .. v)
      q:task_done()
    end
  end)
  async.gather(producer, worker, joiner)
  lu.assertEquals(log, {"done 1", "done 2", "done 3", "done 4", "done 5", "joined"})
end

function TestQueueJoin:test_task_done_too_often()
  local q = async.queue()
  local ok, err = pcall(q.task_done, q)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "task_done: called more times than items were put")
  q:put_nowait(1)
  lu.assertEquals(q:unfinished(), 1)
  q:task_done()
  lu.assertFalse(pcall(q.task_done, q))
end

function TestQueueJoin:test_handed_off_items_count()
  local q = async.queue()
  local g = started(function() return q:get() end)
  q:put("x")
  lu.assertEquals(q:unfinished(), 1)
  g:await()
  local j = started(function() q:join() return "joined" end)
  lu.assertEquals(j:state(), "waiting")
  q:task_done()
  lu.assertEquals(j:await(), "joined")
end

support.run(...)
