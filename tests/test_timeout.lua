-- tests/test_timeout.lua: async.timeout, a deadline for a block of the
-- current task: values, Timeout, nesting, cleanup, and no leaked
-- cancellation afterwards.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"

-- Passes d seconds without letting the loop run (no wait), so deadlines
-- pass while the task is busy; what then happens is decided by order, not
-- by timing.
-- Runs for d seconds without waiting (deadlines pass meanwhile). The suites
-- run on the virtual clock, so the order in which deadlines fall does not
-- depend on how fast the machine is (under valgrind, a timeout registered
-- a moment after another could otherwise fall after it).
local core = require "async.core"
local function busy(d)
  core.advance(d)
end

-- Calls f and returns a packed table of pcall's results.
local function try(f, ...)
  return table.pack(pcall(f, ...))
end

TestTimeout = support.suite({}, {virtual_clock = true})

function TestTimeout:test_returns_values_when_fast()
  local r = table.pack(async.timeout(1, function(a, b)
    async.sleep(0.001)
    return a, nil, b
  end, "x", "y"))
  lu.assertEquals(r.n, 3)
  lu.assertEquals(r[1], "x")
  lu.assertNil(r[2])
  lu.assertEquals(r[3], "y")
end

function TestTimeout:test_returns_values_without_waiting()
  lu.assertEquals({async.timeout(1, function() return 1, 2 end)}, {1, 2})
end

function TestTimeout:test_raises_timeout_when_slow_inner_sees_cancelled()
  local seen
  local r = try(async.timeout, 0.005, function()
    local ok, err = pcall(async.sleep, 10)
    seen = err
    error(err, 0)
  end)
  lu.assertFalse(r[1])
  lu.assertTrue(async.is_timeout(r[2]), "not a Timeout: " .. tostring(r[2]))
  lu.assertFalse(async.is_cancelled(r[2]))
  lu.assertStrContains(tostring(r[2]), "Timeout")
  lu.assertTrue(async.is_cancelled(seen), "inner code saw " .. tostring(seen))
end

function TestTimeout:test_timeout_error_class()
  local r = try(async.timeout, 0.001, async.sleep, 10)
  lu.assertTrue(async.is_timeout(r[2]))
  lu.assertIs(getmetatable(r[2]), async.Timeout)
  lu.assertFalse(async.is_timeout("Timeout"))
  lu.assertFalse(async.is_timeout({}))
end

function TestTimeout:test_inner_error_passes_through()
  local e = {}
  local r = try(async.timeout, 1, function() async.sleep(0) error(e) end)
  lu.assertFalse(r[1])
  lu.assertIs(r[2], e)
  r = try(async.timeout, 1, function() error("plain", 0) end)
  lu.assertEquals(r[2], "plain")
end

function TestTimeout:test_block_that_catches_and_returns()
  -- the block swallows the Cancelled and returns: timeout does not invent
  -- a Timeout, and nothing stays pending
  local r = table.pack(async.timeout(0.002, function()
    local ok = pcall(async.sleep, 10)
    return ok and "slept" or "interrupted"
  end))
  lu.assertEquals(r[1], "interrupted")
  async.sleep(0.005)
end

function TestTimeout:test_math_huge_means_no_timeout()
  lu.assertEquals(async.timeout(math.huge, function()
    async.sleep(0.002)
    return "ok"
  end), "ok")
  lu.assertEquals(support.timers(), 0)
end

function TestTimeout:test_argument_errors()
  local function msg(...)
    local ok, err = pcall(async.timeout, ...)
    lu.assertFalse(ok)
    return err
  end
  lu.assertStrContains(msg("x", function() end), "bad argument #1 to 'timeout'")
  lu.assertStrContains(msg(0 / 0, function() end), "nan")
  lu.assertStrContains(msg(nil, function() end), "number expected")
  lu.assertStrContains(msg(1, 5), "bad argument #2 to 'timeout'")
  lu.assertStrContains(msg(1), "function expected")
end

function TestTimeout:test_outside_task_is_an_error()
  local f = async.future()
  async.call_soon(function() f:resolve(pcall(async.timeout, 1, function() end)) end)
  local ok, err = f:await()
  lu.assertFalse(ok)
  lu.assertStrContains(err, "not inside a task")
end

function TestTimeout:test_no_timer_left_after_fast_block()
  async.timeout(10, function() async.sleep(0) end)
  lu.assertEquals(support.timers(), 0)
end

function TestTimeout:test_zero_timeout_on_a_waiting_block()
  local r = try(async.timeout, 0, async.sleep, 10)
  lu.assertTrue(async.is_timeout(r[2]), tostring(r[2]))
end

------------------------------------------------------------ nesting

TestNestedTimeout = support.suite({}, {virtual_clock = true})

function TestNestedTimeout:test_inner_shorter()
  local log, add = support.log()
  local r = async.timeout(1, function()
    local ok, err = pcall(async.timeout, 0.002, async.sleep, 10)
    add(async.is_timeout(err) and "inner timeout" or tostring(err))
    async.sleep(0.005)                  -- outer continues
    add("outer continues")
    return "outer result"
  end)
  lu.assertEquals(r, "outer result")
  lu.assertEquals(log, {"inner timeout", "outer continues"})
end

function TestNestedTimeout:test_outer_shorter()
  local log, add = support.log()
  local r = try(async.timeout, 0.002, function()
    local ok, err = pcall(async.timeout, 1, async.sleep, 10)
    add(async.is_timeout(err) and "inner claimed it"
        or async.is_cancelled(err) and "inner saw Cancelled" or tostring(err))
    error(err, 0)
  end)
  lu.assertFalse(r[1])
  lu.assertTrue(async.is_timeout(r[2]), tostring(r[2]))
  lu.assertEquals(log, {"inner saw Cancelled"})
end

function TestNestedTimeout:test_both_expired_outer_fires_first_inner_must_not_claim()
  -- Both deadlines pass while the task is busy; at its next wait the
  -- outer's callback runs first (earlier deadline) and wakes it with the
  -- outer's Cancelled, then the inner's finds it ready. The inner timeout
  -- must pass the outer's cancellation on, not turn it into its own
  -- Timeout: the block handles only the inner Timeout and carries on, so
  -- the outer deadline would be lost.
  local log, add = support.log()
  local r = try(async.timeout, 0.002, function()
    local ok, err = pcall(async.timeout, 0.003, function()
      busy(0.01)
      async.sleep(10)
    end)
    if not ok and not async.is_timeout(err) then
      add("inner passed " .. (async.is_cancelled(err) and "Cancelled" or tostring(err)))
      error(err, 0)
    end
    add("inner claimed Timeout")
    async.sleep(0.005)
    return "carried on past the outer deadline"
  end)
  lu.assertFalse(r[1], "outer timeout was lost: " .. tostring(r[2]))
  lu.assertTrue(async.is_timeout(r[2]), tostring(r[2]))
  lu.assertEquals(log, {"inner passed Cancelled"})
  async.sleep(0.005)                    -- and nothing leaks
end

function TestNestedTimeout:test_both_expired_inner_first()
  -- the inner deadline is earlier: the inner Timeout is raised inside, and
  -- the outer still ends in Timeout at the block's next wait
  local log, add = support.log()
  local r = try(async.timeout, 0.003, function()
    local ok, err = pcall(async.timeout, 0.002, function()
      busy(0.01)
      async.sleep(10)
    end)
    add(async.is_timeout(err) and "inner Timeout" or tostring(err))
    async.sleep(10)
  end)
  lu.assertFalse(r[1])
  lu.assertTrue(async.is_timeout(r[2]), tostring(r[2]))
  lu.assertEquals(log, {"inner Timeout"})
  async.sleep(0.005)
end

function TestNestedTimeout:test_three_levels_middle_fires()
  local log, add = support.log()
  local r = async.timeout(1, function()
    local ok, err = pcall(async.timeout, 0.003, function()
      async.timeout(1, function() async.sleep(10) end)
    end)
    add(async.is_timeout(err) and "middle timeout" or tostring(err))
    async.sleep(0.001)
    return "outer fine"
  end)
  lu.assertEquals(r, "outer fine")
  lu.assertEquals(log, {"middle timeout"})
end

function TestNestedTimeout:test_timeout_during_cleanup_is_not_swallowed()
  -- the inner code catches the inner Cancelled, then waits in its cleanup
  -- past the outer deadline: the outer raises Timeout
  local log, add = support.log()
  local r = try(async.timeout, 0.01, function()
    local ok, err = pcall(async.timeout, 0.002, function()
      local ok2, e2 = pcall(async.sleep, 10)
      add("inner caught " .. (async.is_cancelled(e2) and "Cancelled" or tostring(e2)))
      local ok3, e3 = pcall(async.sleep, 10)   -- cleanup, past the outer deadline
      add("cleanup interrupted " .. (async.is_cancelled(e3) and "Cancelled" or tostring(e3)))
      error(e3, 0)
    end)
    add(async.is_timeout(err) and "inner reports Timeout" or
        async.is_cancelled(err) and "inner passes Cancelled" or tostring(err))
    error(err, 0)
  end)
  lu.assertFalse(r[1])
  lu.assertTrue(async.is_timeout(r[2]), tostring(r[2]))
  lu.assertEquals(log, {"inner caught Cancelled", "cleanup interrupted Cancelled",
                        "inner passes Cancelled"})
end

function TestNestedTimeout:test_timeout_inside_spawned_tasks_are_independent()
  local a = async.spawn(function()
    return pcall(async.timeout, 0.002, async.sleep, 10)
  end)
  local b = async.spawn(function()
    return async.timeout(1, function() async.sleep(0.005) return "b fine" end)
  end)
  local ok, err = a:await()
  lu.assertFalse(ok)
  lu.assertTrue(async.is_timeout(err))
  lu.assertEquals(b:await(), "b fine")
end

------------------------------------------------------------ no leaks

TestTimeoutLeaks = support.suite({}, {virtual_clock = true})

function TestTimeoutLeaks:test_deadline_passes_as_block_ends_without_wait()
  -- the block is busy past its deadline and returns without waiting
  local r = async.timeout(0.002, function() busy(0.005) return "done" end)
  lu.assertEquals(r, "done")
  async.sleep(0.01)
  lu.assertEquals(support.timers(), 0)
end

function TestTimeoutLeaks:test_deadline_fires_while_block_is_ready()
  -- The deadline fires while the block is ready to run (queued after a
  -- sleep(0)), so its cancellation stays pending; the block then returns
  -- without waiting again. timeout must return the block's result and
  -- withdraw the cancellation: the waits after it must not see it.
  -- A probe due just before the deadline tells when the timers have run:
  -- both callbacks are queued behind our sleep(0), in deadline order.
  local probed = false
  async.call_later(0.001, function() probed = true end)
  local r = async.timeout(0.002, function()
    busy(0.005)
    repeat async.sleep(0) until probed  -- the deadline has now fired
    return "done"
  end)
  lu.assertEquals(r, "done")
  async.sleep(0.002)
  async.sleep(0)
end

function TestTimeoutLeaks:test_after_timeout_raised_later_waits_work()
  local r = try(async.timeout, 0.002, async.sleep, 10)
  lu.assertTrue(async.is_timeout(r[2]))
  async.sleep(0.01)
  local f = async.future()
  async.call_soon(function() f:resolve("fine") end)
  lu.assertEquals(f:await(), "fine")
end

function TestTimeoutLeaks:test_racing_deadlines_never_leak()
  -- block durations around the deadline: whatever each timeout returns,
  -- the next wait completes normally
  for i = 1, 12 do
    local d = 0.001 * (1 + i % 3)
    local r = try(async.timeout, 0.002, async.sleep, d)
    lu.assertTrue(r[1] or async.is_timeout(r[2]), tostring(r[2]))
    local ok, err = pcall(async.sleep, 0.003)
    lu.assertTrue(ok, "leaked cancellation: " .. tostring(err))
  end
end

function TestTimeoutLeaks:test_racing_deadline_with_future()
  -- the future is resolved by a callback due at the same moment as the
  -- deadline; either outcome is fine, a leak is not
  for _ = 1, 8 do
    local f = async.future()
    local h = async.call_later(0.002, function() f:resolve("v") end)
    local r = try(async.timeout, 0.002, f.await, f)
    lu.assertTrue(r[1] or async.is_timeout(r[2]), tostring(r[2]))
    h:cancel()
    local ok, err = pcall(async.sleep, 0.003)
    lu.assertTrue(ok, "leaked cancellation: " .. tostring(err))
  end
end

support.run(...)
