-- tests/test_sync.lua: async.lock, event, condition, semaphore,
-- bounded_semaphore and barrier: every method, FIFO hand-off, cancellation
-- of waiters at every point, misuse errors, and <close> guards.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"

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

local function expect_error(msg, fn, ...)
  local ok, err = pcall(fn, ...)
  lu.assertFalse(ok, "expected an error containing: " .. msg)
  lu.assertStrContains(tostring(err), msg)
  return err
end

------------------------------------------------------------------- lock

TestLock = support.suite {}

function TestLock:test_acquire_release_locked()
  local l = async.lock()
  lu.assertFalse(l:locked())
  lu.assertIs(l:acquire(), l)
  lu.assertTrue(l:locked())
  lu.assertEquals(tostring(l), "Lock<locked, 0 waiting>")
  l:release()
  lu.assertFalse(l:locked())
  lu.assertEquals(tostring(l), "Lock<unlocked, 0 waiting>")
end

function TestLock:test_fifo_handoff()
  -- a task that releases and acquires again queues behind the waiters
  local l = async.lock()
  local log, add = support.log()
  l:acquire()
  local ts = {}
  for i = 1, 3 do
    ts[i] = started(function()
      local _ <close> = l:acquire()
      add(i)
      async.sleep(0)
    end)
  end
  lu.assertEquals(tostring(l), "Lock<locked, 3 waiting>")
  l:release()
  lu.assertTrue(l:locked())              -- handed to task 1 at once
  l:acquire()
  add("main")
  l:release()
  async.gather(ts)
  lu.assertEquals(log, {1, 2, 3, "main"})
  lu.assertFalse(l:locked())
end

function TestLock:test_round_robin_under_contention()
  -- 8 tasks each take the lock 5 times, waiting while they hold it: strict
  -- FIFO hand-off makes the order a round robin, the same every round
  local l = async.lock()
  local order = {}
  local ts = {}
  for i = 1, 8 do
    ts[i] = async.spawn(function()
      for _ = 1, 5 do
        local _ <close> = l:acquire()
        order[#order + 1] = i
        async.sleep(0)
      end
    end)
  end
  async.gather(ts)
  lu.assertEquals(#order, 40)
  for k = 1, 40 do lu.assertEquals(order[k], (k - 1) % 8 + 1) end
end

function TestLock:test_close_releases_on_scope_exit_and_error()
  local l = async.lock()
  do
    local _ <close> = l:acquire()
    lu.assertTrue(l:locked())
  end
  lu.assertFalse(l:locked())
  local ok, err = pcall(function()
    local _ <close> = l:acquire()
    error("boom", 0)
  end)
  lu.assertFalse(ok)
  lu.assertEquals(err, "boom")
  lu.assertFalse(l:locked())
end

function TestLock:test_close_releases_on_cancel()
  local l = async.lock()
  local holder = started(function()
    local _ <close> = l:acquire()
    async.sleep(10)
  end)
  local waiter = started(function() local _ <close> = l:acquire(); return "got it" end)
  lu.assertTrue(l:locked())
  holder:cancel()
  expect_cancelled(holder)
  lu.assertEquals(waiter:await(), "got it")
  lu.assertFalse(l:locked())
end

function TestLock:test_cancelled_waiter_never_gets_the_lock()
  local l = async.lock()
  l:acquire()
  local got = {}
  local a = started(function() l:acquire(); got[#got + 1] = "a"; l:release() end)
  local b = started(function() l:acquire(); got[#got + 1] = "b"; l:release() end)
  a:cancel()
  l:release()                             -- a left the line: b is next
  expect_cancelled(a)
  b:await()
  lu.assertEquals(got, {"b"})
  lu.assertFalse(l:locked())
end

function TestLock:test_handed_then_cancelled_holds_and_releases()
  -- woken as the owner, then cancelled before it ran: acquire returns with
  -- the lock, the cancel is raised at the next wait and <close> releases
  local l = async.lock()
  l:acquire()
  local log, add = support.log()
  local a = started(function()
    local _ <close> = l:acquire()
    add("a holds")
    async.sleep(0)
    add("not reached")
  end)
  local b = started(function() local _ <close> = l:acquire(); add("b holds") end)
  l:release()
  a:cancel()
  expect_cancelled(a)
  b:await()
  lu.assertEquals(log, {"a holds", "b holds"})
  lu.assertFalse(l:locked())
end

function TestLock:test_release_errors()
  local l = async.lock()
  expect_error("release: the lock is not locked", l.release, l)
  local other = started(function() l:acquire(); async.sleep(10) end)
  expect_error("release: the lock is held by another task", l.release, l)
  lu.assertTrue(l:locked())
  other:cancel()
  expect_cancelled(other)
  -- the task ended holding it (no <close>): still locked, by nobody alive
  lu.assertTrue(l:locked())
  expect_error("release: the lock is held by another task", l.release, l)
end

function TestLock:test_not_reentrant()
  local l = async.lock()
  local _ <close> = l:acquire()
  expect_error("acquire: this task already holds the lock (locks are not re-entrant)", l.acquire, l)
end

function TestLock:test_needs_a_task()
  local l = async.lock()
  local f = async.future()
  async.call_soon(function() f:resolve(pcall(l.acquire, l)) end)
  local ok, err = f:await()
  lu.assertFalse(ok)
  lu.assertStrContains(err, "acquire: not inside a task")
  expect_error("lasync.Lock expected", l.acquire, {})
end

function TestLock:test_acquire_under_timeout()
  local l = async.lock()
  local holder = started(function() local _ <close> = l:acquire(); async.sleep(10) end)
  local ok, err = pcall(async.timeout, 0.001, l.acquire, l)
  lu.assertFalse(ok)
  lu.assertTrue(async.is_timeout(err))
  holder:cancel()
  expect_cancelled(holder)
  lu.assertFalse(l:locked())              -- the timed-out waiter left the line
end

------------------------------------------------------------------ event

TestEvent = support.suite {}

function TestEvent:test_set_wakes_every_waiter()
  local e = async.event()
  lu.assertFalse(e:is_set())
  local ts = {}
  for i = 1, 3 do ts[i] = started(function() return e:wait(), i end) end
  lu.assertEquals(tostring(e), "Event<clear, 3 waiting>")
  e:set()
  lu.assertTrue(e:is_set())
  for i = 1, 3 do lu.assertEquals({ts[i]:await()}, {true, i}) end
  lu.assertTrue(e:wait())                 -- set: returns at once
  e:clear()
  lu.assertFalse(e:is_set())
  lu.assertEquals(tostring(e), "Event<clear, 0 waiting>")
end

function TestEvent:test_set_then_clear_still_wakes()
  local e = async.event()
  local t = started(function() return e:wait() end)
  e:set()
  e:clear()
  lu.assertTrue(t:await())
end

function TestEvent:test_cancelled_waiter()
  local e = async.event()
  local a = started(function() e:wait() end)
  local b = started(function() return e:wait() end)
  a:cancel()
  expect_cancelled(a)
  lu.assertEquals(tostring(e), "Event<clear, 1 waiting>")
  e:set()
  lu.assertTrue(b:await())
end

function TestEvent:test_wait_needs_a_task_only_to_wait()
  local e = async.event()
  local f = async.future()
  async.call_soon(function() f:resolve(pcall(e.wait, e)) end)
  local ok, err = f:await()
  lu.assertFalse(ok)
  lu.assertStrContains(err, "wait: not inside a task")
end

-------------------------------------------------------------- condition

TestCondition = support.suite {}

function TestCondition:test_wait_and_notify_in_order()
  local c = async.condition()
  local log, add = support.log()
  local ts = {}
  for i = 1, 3 do
    ts[i] = started(function()
      local _ <close> = c:acquire()
      c:wait()
      lu.assertTrue(c:locked())
      add(i)
    end)
  end
  lu.assertStrContains(tostring(c), "Condition<3 waiting")
  do
    local _ <close> = c:acquire()
    c:notify()
    add("notified 1")
  end
  async.sleep(0)
  do
    local _ <close> = c:acquire()
    c:notify(5)
  end
  async.gather(ts)
  lu.assertEquals(log, {"notified 1", 1, 2, 3})
end

function TestCondition:test_notify_all_and_zero()
  local c = async.condition()
  local n = 0
  local ts = {}
  for i = 1, 4 do ts[i] = started(function() c:acquire(); c:wait(); n = n + 1; c:release() end) end
  c:acquire()
  c:notify(0)
  c:release()
  async.sleep(0)
  lu.assertEquals(n, 0)
  c:acquire()
  c:notify_all()
  c:release()
  async.gather(ts)
  lu.assertEquals(n, 4)
end

function TestCondition:test_wait_returns_holding_the_lock()
  -- the notified waiter wakes only once the notifier releases
  local c = async.condition()
  local log, add = support.log()
  local t = started(function()
    c:acquire()
    lu.assertTrue(c:wait())
    add("waiter holds")
    c:release()
  end)
  c:acquire()
  c:notify()
  async.sleep(0)
  async.sleep(0)
  add("notifier still holds")
  c:release()
  t:await()
  lu.assertEquals(log, {"notifier still holds", "waiter holds"})
end

function TestCondition:test_wait_for()
  local c = async.condition()
  local items = {}
  local consumer = started(function()
    local _ <close> = c:acquire()
    return c:wait_for(function() return #items >= 2 and #items end)
  end)
  for i = 1, 3 do
    local _ <close> = c:acquire()
    items[i] = i
    c:notify_all()
    if i < 3 then async.sleep(0) end
  end
  lu.assertEquals(consumer:await(), 2)
  -- already true: returns without waiting
  local _ <close> = c:acquire()
  lu.assertEquals(c:wait_for(function() return "yes" end), "yes")
end

function TestCondition:test_shared_lock()
  local l = async.lock()
  local c = async.condition(l)
  local _ <close> = l:acquire()
  lu.assertTrue(c:locked())
  expect_error("acquire: this task already holds the lock", c.acquire, c)
  expect_error("lasync.Lock expected", async.condition, {})
end

function TestCondition:test_misuse()
  local c = async.condition()
  expect_error("wait: the condition's lock is not held by this task", c.wait, c)
  expect_error("notify: the condition's lock is not held by this task", c.notify, c)
  expect_error("notify_all: the condition's lock is not held by this task", c.notify_all, c)
  expect_error("wait_for: the condition's lock is not held by this task",
               c.wait_for, c, function() end)
  expect_error("release: the lock is not locked", c.release, c)
  c:acquire()
  expect_error("must be 0 or more", c.notify, c, -1)
  expect_error("function expected", c.wait_for, c, 1)
  c:release()
end

function TestCondition:test_cancel_while_waiting_reacquires()
  -- the Cancelled leaves wait only once the lock is held again
  local c = async.condition()
  local log, add = support.log()
  local t = started(function()
    c:acquire()
    local ok, err = pcall(c.wait, c)
    add(tostring(err))
    add(c:locked() and "holds" or "does not hold")
    c:release()                           -- raises if not the holder
    error(err, 0)
  end)
  c:acquire()                             -- t is waiting, the lock is free
  t:cancel("stop")
  async.sleep(0)
  lu.assertEquals(log, {})                -- t waits for the lock
  c:release()
  expect_cancelled(t)
  lu.assertEquals(log, {"Cancelled: stop", "holds"})
  lu.assertFalse(c:locked())
end

function TestCondition:test_cancel_during_reacquire()
  -- cancelled while waiting for the lock after a first cancellation: the
  -- wait still ends holding the lock, and raises the latest cancellation
  local c = async.condition()
  local state = {}
  local t = started(function()
    c:acquire()
    local ok, err = pcall(c.wait, c)
    state.err = err
    state.held = c:locked()
    c:release()
  end)
  c:acquire()
  t:cancel("first")
  async.sleep(0)                          -- t now waits to re-acquire
  t:cancel("second")
  async.sleep(0)
  lu.assertNil(state.err)
  c:release()
  t:await()
  lu.assertEquals(state.err.message, "second")
  lu.assertTrue(state.held)
  lu.assertFalse(c:locked())
end

function TestCondition:test_notified_then_cancelled_passes_it_on()
  -- notify(1) reached a waiter that is cancelled before it got the lock:
  -- the notification goes to the next waiter instead of being lost
  local c = async.condition()
  local woke = {}
  local a = started(function() local _ <close> = c:acquire(); c:wait(); woke.a = true end)
  local b = started(function() local _ <close> = c:acquire(); c:wait(); woke.b = true end)
  c:acquire()
  c:notify(1)                             -- a
  a:cancel()
  c:release()
  expect_cancelled(a)
  b:await()
  lu.assertTrue(woke.b)
  lu.assertNil(woke.a)
  lu.assertFalse(c:locked())
end

function TestCondition:test_wait_for_cancelled()
  local c = async.condition()
  local state = {}
  local t = started(function()
    local _ <close> = c:acquire()
    local ok, err = pcall(c.wait_for, c, function() return false end)
    state.err, state.held = err, c:locked()
    error(err, 0)
  end)
  t:cancel("stop waiting")
  expect_cancelled(t)
  lu.assertEquals(state.err.message, "stop waiting")
  lu.assertTrue(state.held)
  lu.assertFalse(c:locked())              -- <close> released it
end

function TestCondition:test_pending_cancel_raised_before_releasing()
  local c = async.condition()
  local t = async.spawn(function()
    c:acquire()
    async.current():cancel("pending")
    local ok, err = pcall(c.wait, c)
    local held = c:locked()
    c:release()
    return err.message, held
  end)
  lu.assertEquals({t:await()}, {"pending", true})
end

function TestCondition:test_wait_under_timeout()
  local c = async.condition()
  c:acquire()
  local ok, err = pcall(async.timeout, 0.001, c.wait, c)
  lu.assertFalse(ok)
  lu.assertTrue(async.is_timeout(err))
  lu.assertTrue(c:locked())               -- held again
  c:release()
end

------------------------------------------------------------- semaphore

TestSemaphore = support.suite {}

function TestSemaphore:test_counts_and_blocks()
  local s = async.semaphore(2)
  lu.assertEquals(s:value(), 2)
  lu.assertIs(s:acquire(), s)
  s:acquire()
  lu.assertEquals(s:value(), 0)
  lu.assertTrue(s:locked())
  local t = started(function() s:acquire(); return "acquired" end)
  lu.assertEquals(t:state(), "waiting")
  lu.assertEquals(tostring(s), "Semaphore<value 0, 1 waiting>")
  s:release()                             -- handed to t: the value stays 0
  lu.assertEquals(s:value(), 0)
  lu.assertEquals(t:await(), "acquired")
  s:release(); s:release()
  lu.assertEquals(s:value(), 2)
  s:release()                             -- plain semaphores may go above
  lu.assertEquals(s:value(), 3)
  lu.assertEquals(async.semaphore():value(), 1)
  lu.assertEquals(async.semaphore(0):value(), 0)
end

function TestSemaphore:test_fifo()
  local s = async.semaphore(0)
  local log, add = support.log()
  local ts = {}
  for i = 1, 4 do ts[i] = started(function() s:acquire(); add(i) end) end
  for _ = 1, 4 do s:release() end
  async.gather(ts)
  lu.assertEquals(log, {1, 2, 3, 4})
end

function TestSemaphore:test_limits_concurrency()
  local s = async.semaphore(3)
  local running, peak = 0, 0
  local ts = {}
  for i = 1, 10 do
    ts[i] = async.spawn(function()
      local _ <close> = s:acquire()
      running = running + 1
      peak = math.max(peak, running)
      async.sleep(0)
      running = running - 1
    end)
  end
  async.gather(ts)
  lu.assertEquals(peak, 3)
  lu.assertEquals(s:value(), 3)
end

function TestSemaphore:test_round_robin_under_contention()
  local s = async.semaphore(2)
  local order = {}
  local ts = {}
  for i = 1, 6 do
    ts[i] = async.spawn(function()
      for _ = 1, 4 do
        local _ <close> = s:acquire()
        order[#order + 1] = i
        async.sleep(0)
      end
    end)
  end
  async.gather(ts)
  lu.assertEquals(#order, 24)
  for k = 1, 24 do lu.assertEquals(order[k], (k - 1) % 6 + 1) end
  lu.assertEquals(s:value(), 2)
end

function TestSemaphore:test_cancelled_waiter_takes_no_permit()
  local s = async.semaphore(0)
  local a = started(function() s:acquire() end)
  local b = started(function() s:acquire(); return "b" end)
  a:cancel()
  s:release()
  expect_cancelled(a)
  lu.assertEquals(b:await(), "b")
  s:release()
  lu.assertEquals(s:value(), 1)
end

function TestSemaphore:test_close_releases_on_error_and_cancel()
  local s = async.semaphore(1)
  pcall(function() local _ <close> = s:acquire(); error("x") end)
  lu.assertEquals(s:value(), 1)
  local t = started(function() local _ <close> = s:acquire(); async.sleep(10) end)
  lu.assertEquals(s:value(), 0)
  t:cancel()
  expect_cancelled(t)
  lu.assertEquals(s:value(), 1)
end

function TestSemaphore:test_bounded()
  local s = async.bounded_semaphore(2)
  lu.assertEquals(tostring(s), "BoundedSemaphore<value 2, 0 waiting>")
  expect_error("release: the bounded semaphore was released more times than it was acquired",
               s.release, s)
  s:acquire()
  s:release()
  expect_error("its value would exceed 2", s.release, s)
  lu.assertEquals(s:value(), 2)
  local z = async.bounded_semaphore(0)
  local t = started(function() z:acquire(); return "ok" end)
  z:release()                             -- to the waiter: not an over-release
  lu.assertEquals(t:await(), "ok")
  expect_error("more times than it was acquired", z.release, z)
end

function TestSemaphore:test_bad_values()
  expect_error("the initial value must be 0 or more", async.semaphore, -1)
  expect_error("number has no integer representation", async.bounded_semaphore, 0.5)
end

---------------------------------------------------------------- barrier

TestBarrier = support.suite {}

function TestBarrier:test_arrival_indices_and_cycles()
  local b = async.barrier(3)
  lu.assertEquals(b:parties(), 3)
  for _ = 1, 2 do                         -- cyclic: usable again at once
    local log, add = support.log()
    local ts = {}
    for i = 1, 3 do
      ts[i] = async.spawn(function()
        local idx = b:wait()
        add("past " .. i)
        return idx
      end)
      async.sleep(0)
      if i < 3 then
        lu.assertEquals(b:n_waiting(), i)
        lu.assertEquals(#log, 0)
      end
    end
    local r = async.gather(ts)
    lu.assertEquals({r[1], r[2], r[3]}, {1, 2, 3})
    lu.assertEquals(b:n_waiting(), 0)
    lu.assertEquals(#log, 3)
  end
  lu.assertEquals(tostring(b), "Barrier<0/3 waiting>")
end

function TestBarrier:test_single_party()
  local b = async.barrier(1)
  lu.assertEquals(b:wait(), 1)
  lu.assertEquals(b:wait(), 1)
end

function TestBarrier:test_cancelled_waiter_breaks_it()
  local b = async.barrier(3)
  local a = started(function() return b:wait() end)
  local c = started(function() return b:wait() end)
  a:cancel()
  expect_cancelled(a)
  local ok, err = pcall(c.await, c)
  lu.assertFalse(ok)
  lu.assertIs(getmetatable(err), async.BrokenBarrier)
  lu.assertEquals(err.kind, "BrokenBarrier")
  lu.assertEquals(tostring(err), "BrokenBarrier: the barrier is broken (a waiting task was cancelled)")
  lu.assertTrue(b:broken())
  ok, err = pcall(b.wait, b)
  lu.assertFalse(ok)
  lu.assertIs(getmetatable(err), async.BrokenBarrier)
  lu.assertStrContains(err.message, "reset() it")
  lu.assertStrContains(tostring(b), "broken")
  b:reset()
  lu.assertFalse(b:broken())
  local r = async.gather(function() return b:wait() end, function() return b:wait() end,
                         function() return b:wait() end)
  lu.assertEquals(r[3], 3)
end

function TestBarrier:test_released_then_cancelled_still_passes()
  local b = async.barrier(2)
  local log, add = support.log()
  local a = started(function()
    add("a " .. b:wait())
    async.sleep(0)
    add("not reached")
  end)
  lu.assertEquals(b:wait(), 2)            -- releases a
  a:cancel()
  expect_cancelled(a)
  lu.assertEquals(log, {"a 1"})
  lu.assertFalse(b:broken())
end

function TestBarrier:test_abort_and_reset()
  local b = async.barrier(3)
  local w = started(function() return b:wait() end)
  b:abort()
  local ok, err = pcall(w.await, w)
  lu.assertFalse(ok)
  lu.assertEquals(err.message, "the barrier is broken (aborted)")
  lu.assertTrue(b:broken())
  b:reset()
  lu.assertFalse(b:broken())
  local w2 = started(function() return b:wait() end)
  lu.assertEquals(b:n_waiting(), 1)
  b:reset()                               -- waiters fail, the barrier is fresh
  ok, err = pcall(w2.await, w2)
  lu.assertFalse(ok)
  lu.assertEquals(err.message, "the barrier is broken (reset)")
  lu.assertFalse(b:broken())
  lu.assertEquals(b:n_waiting(), 0)
end

function TestBarrier:test_bad_parties()
  expect_error("the number of parties must be 1 or more", async.barrier, 0)
  expect_error("number expected, got no value", async.barrier)
end

support.run(...)
