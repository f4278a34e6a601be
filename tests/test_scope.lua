-- tests/test_scope.lua: async.scope, the task group (nursery).
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"

-- A child body that waits forever, logs its cancellation, and re-raises.
local function waits_forever(add, name)
  return function()
    local ok, err = pcall(async.sleep, 10)
    add(name .. (async.is_cancelled(err) and " cancelled" or " woken"))
    error(err, 0)
  end
end

local function sorted(t)
  table.sort(t)
  return t
end

TestScope = support.suite({}, 3)

function TestScope:test_waits_for_all_children()
  local log, add = support.log()
  local gates = {async.future(), async.future()}
  local t = async.spawn(function()
    async.scope(function(g)
      g:spawn(function() gates[1]:await() add("child 1") end)
      g:spawn(function() gates[2]:await() add("child 2") end)
      add("body done")
    end)
    add("scope done")
  end)
  for _ = 1, 3 do async.sleep(0) end
  lu.assertEquals(log, {"body done"})   -- the scope is still waiting
  gates[2]:resolve()
  for _ = 1, 3 do async.sleep(0) end
  lu.assertEquals(log, {"body done", "child 2"})
  gates[1]:resolve()
  t:await()
  lu.assertEquals(log, {"body done", "child 2", "child 1", "scope done"})
end

function TestScope:test_returns_the_body_results()
  local r = table.pack(async.scope(function(g, a, b)
    g:spawn(function() async.sleep(0.001) end)
    return a, nil, b
  end, "x", "y"))
  lu.assertEquals(r.n, 3)
  lu.assertEquals(r[1], "x")
  lu.assertNil(r[2])
  lu.assertEquals(r[3], "y")
end

function TestScope:test_no_children()
  lu.assertEquals(async.scope(function() return 42 end), 42)
end

function TestScope:test_group_spawn_returns_task_with_args()
  local t
  async.scope(function(g)
    t = g:spawn(function(a, b) return a + b end, 2, 3)
  end)
  lu.assertTrue(t:done())
  lu.assertEquals(t:result(), 5)
end

function TestScope:test_children_may_spawn_more_children()
  local log, add = support.log()
  async.scope(function(g)
    g:spawn(function()
      async.sleep(0.001)
      g:spawn(function() async.sleep(0.001) add("grandchild") end)
      add("child")
    end)
  end)
  lu.assertEquals(log, {"child", "grandchild"})
end

function TestScope:test_child_failure_cancels_siblings_and_body_and_is_raised()
  local log, add = support.log()
  local e = {code = "child failed"}
  local sib
  local ok, err = pcall(async.scope, function(g)
    sib = g:spawn(waits_forever(add, "sibling"))
    g:spawn(function() async.sleep(0.002) error(e) end)
    local ok2, err2 = pcall(async.sleep, 10)
    add(async.is_cancelled(err2) and "body cancelled" or "body woken")
    error(err2, 0)
  end)
  lu.assertFalse(ok)
  lu.assertIs(err, e)                   -- the failing child's error value
  lu.assertEquals(sorted(log), {"body cancelled", "sibling cancelled"})
  lu.assertTrue(sib:done())             -- the scope waited for it
  lu.assertTrue(sib:cancelled())
end

function TestScope:test_child_failure_string_error()
  local ok, err = pcall(async.scope, function(g)
    g:spawn(function() error("plain failure", 0) end)
    async.sleep(10)
  end)
  lu.assertFalse(ok)
  lu.assertEquals(err, "plain failure")
end

function TestScope:test_child_failure_after_body_returned()
  local log, add = support.log()
  local ok, err = pcall(async.scope, function(g)
    g:spawn(waits_forever(add, "sibling"))
    g:spawn(function() async.sleep(0.002) error("late failure", 0) end)
    return "body returned"
  end)
  lu.assertFalse(ok)
  lu.assertEquals(err, "late failure")
  lu.assertEquals(log, {"sibling cancelled"})
end

function TestScope:test_first_failure_wins()
  local g1 = async.future()
  local ok, err = pcall(async.scope, function(g)
    g:spawn(function() g1:await() error("first", 0) end)
    g:spawn(function()
      pcall(async.sleep, 10)
      error("second, during cancellation", 0)
    end)
    async.sleep(0)
    g1:resolve()
  end)
  lu.assertFalse(ok)
  lu.assertEquals(err, "first")
end

function TestScope:test_failure_traceback_chains_the_child()
  local t = async.spawn(function()
    async.scope(function(g)
      local c = g:spawn(function()
        local function scoped_child_fails() error("boom") end
        async.sleep(0)
        scoped_child_fails()
      end)
      c:set_name("scoped")
    end)
  end)
  pcall(t.await, t)
  local tb = t:traceback()
  lu.assertStrContains(tb, "boom")
  lu.assertStrContains(tb, "re-raised from scoped")
  lu.assertStrContains(tb, "scoped_child_fails")
end

function TestScope:test_child_failing_with_nil_error_fails_the_scope()
  -- error(nil) is a failure too: the siblings and body are cancelled
  local log, add = support.log()
  local ok, err = pcall(async.scope, function(g)
    g:spawn(waits_forever(add, "sibling"))
    g:spawn(function() async.sleep(0.001) error(nil) end)
    local ok2, err2 = pcall(async.sleep, 10)
    add(async.is_cancelled(err2) and "body cancelled" or "body woken")
    error(err2, 0)
  end)
  lu.assertFalse(ok)
  lu.assertNil(err)
  lu.assertEquals(sorted(log), {"body cancelled", "sibling cancelled"})
end

function TestScope:test_child_cancelled_by_itself_does_not_fail_scope()
  local log, add = support.log()
  local r = async.scope(function(g)
    local c = g:spawn(waits_forever(add, "child"))
    g:spawn(function() async.sleep(0.002) add("sibling finished") end)
    async.sleep(0)
    c:cancel()
    return "fine"
  end)
  lu.assertEquals(r, "fine")
  lu.assertEquals(log, {"child cancelled", "sibling finished"})
end

function TestScope:test_group_tasks()
  local list
  local r = async.scope(function(g)
    local a = g:spawn(function() end)
    local b = g:spawn(function() end)
    list = g:tasks()
    lu.assertIs(list[1], a)
    lu.assertIs(list[2], b)
    list[3] = "mine"                    -- a copy: does not touch the group
    return #g:tasks()
  end)
  lu.assertEquals(r, 2)
end

function TestScope:test_group_cancel_after_end_does_nothing()
  local saved
  async.scope(function(g) saved = g end)
  saved:cancel()
  async.sleep(0.001)                    -- nothing raised into us later
  lu.assertStrContains(tostring(saved), "ended")
end

function TestScope:test_body_error_cancels_children_and_is_raised()
  local log, add = support.log()
  local ok, err = pcall(async.scope, function(g)
    g:spawn(waits_forever(add, "child"))
    async.sleep(0)
    error("body failed", 0)
  end)
  lu.assertFalse(ok)
  lu.assertEquals(err, "body failed")
  lu.assertEquals(log, {"child cancelled"})
end

function TestScope:test_cancelling_parent_cancels_children_cleanup_runs()
  local log, add = support.log()
  local kids = {}
  local t = async.spawn(function()
    async.scope(function(g)
      for i = 1, 3 do
        kids[i] = g:spawn(function()
          local ok, err = pcall(async.sleep, 10)
          async.sleep(0.001)              -- cleanup that waits
          add("cleanup " .. i)
          error(err, 0)
        end)
      end
      async.sleep(10)
    end)
    add("after scope")
  end)
  async.sleep(0)
  async.sleep(0)
  t:cancel("parent cancelled")
  local ok, err = pcall(t.await, t)
  lu.assertFalse(ok)
  lu.assertTrue(async.is_cancelled(err), tostring(err))
  lu.assertStrContains(tostring(err), "parent cancelled")
  lu.assertEquals(sorted(log), {"cleanup 1", "cleanup 2", "cleanup 3"})
  for i = 1, 3 do lu.assertTrue(kids[i]:cancelled()) end
end

function TestScope:test_cancel_while_waiting_for_children()
  -- the body has returned; the scope is waiting for its children when the
  -- parent is cancelled
  local log, add = support.log()
  local t = async.spawn(function()
    async.scope(function(g)
      g:spawn(waits_forever(add, "child"))
    end)
  end)
  for _ = 1, 3 do async.sleep(0) end
  lu.assertEquals(t:state(), "waiting")
  t:cancel()
  local ok, err = pcall(t.await, t)
  lu.assertFalse(ok)
  lu.assertTrue(async.is_cancelled(err), tostring(err))
  lu.assertEquals(log, {"child cancelled"})
end

function TestScope:test_group_cancel_ends_scope_without_error()
  local log, add = support.log()
  local r = table.pack(pcall(async.scope, function(g)
    g:spawn(waits_forever(add, "child 1"))
    g:spawn(waits_forever(add, "child 2"))
    async.sleep(0)
    g:cancel()
    local ok, err = pcall(async.sleep, 10)
    add(async.is_cancelled(err) and "body cancelled" or "body woken")
    error(err, 0)
  end))
  lu.assertTrue(r[1], tostring(r[2]))
  lu.assertEquals(r.n, 1)               -- no results
  lu.assertEquals(sorted(log), {"body cancelled", "child 1 cancelled", "child 2 cancelled"})
  async.sleep(0.001)                    -- nothing pending afterwards
end

function TestScope:test_group_cancel_from_a_child()
  local log, add = support.log()
  local ok, err = pcall(async.scope, function(g)
    g:spawn(waits_forever(add, "sibling"))
    g:spawn(function() async.sleep(0.001) g:cancel() end)
    async.sleep(10)
  end)
  lu.assertTrue(ok, tostring(err))
  lu.assertEquals(log, {"sibling cancelled"})
end

function TestScope:test_group_cancel_from_outside()
  local log, add = support.log()
  local group
  local t = async.spawn(function()
    return async.scope(function(g)
      group = g
      g:spawn(waits_forever(add, "child"))
      async.sleep(10)
    end)
  end)
  async.sleep(0)
  async.sleep(0)
  group:cancel()
  local ok, err = pcall(t.await, t)
  lu.assertTrue(ok, tostring(err))
  lu.assertEquals(t:state(), "done")
  lu.assertEquals(log, {"child cancelled"})
end

function TestScope:test_spawn_into_ended_scope_errors()
  local saved
  async.scope(function(g) saved = g end)
  local ok, err = pcall(saved.spawn, saved, function() end)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "ended")
  local ok2, err2 = pcall(function()
    async.scope(function(g) saved = g error("x", 0) end)
  end)
  lu.assertFalse(ok2)
  lu.assertFalse(pcall(saved.spawn, saved, function() end))
end

function TestScope:test_spawn_argument_error()
  local ok, err = pcall(async.scope, function(g) g:spawn(5) end)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "function expected")
end

function TestScope:test_scope_argument_error()
  local ok, err = pcall(async.scope, 5)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "bad argument #1 to 'scope'")
end

function TestScope:test_nested_scopes()
  local log, add = support.log()
  local inner_done = async.event()      -- order by event: sleeps of 1 and 2 ms
  local r = async.scope(function(outer)  -- swapped places on a loaded machine
    outer:spawn(function() inner_done:wait() add("outer child") end)
    local v = async.scope(function(inner)
      inner:spawn(function() async.sleep(0.001) add("inner child") end)
      return "inner"
    end)
    add("inner scope done")
    inner_done:set()
    return v .. "+outer"
  end)
  lu.assertEquals(r, "inner+outer")
  lu.assertEquals(log, {"inner child", "inner scope done", "outer child"})
end

function TestScope:test_nested_inner_failure_propagates_and_cancels_outer_children()
  local log, add = support.log()
  local ok, err = pcall(async.scope, function(outer)
    outer:spawn(waits_forever(add, "outer child"))
    async.scope(function(inner)
      inner:spawn(waits_forever(add, "inner sibling"))
      inner:spawn(function() async.sleep(0.001) error("inner failure", 0) end)
    end)
    add("not reached")
  end)
  lu.assertFalse(ok)
  lu.assertEquals(err, "inner failure")
  lu.assertEquals(sorted(log), {"inner sibling cancelled", "outer child cancelled"})
end

function TestScope:test_nested_inner_failure_caught_outer_continues()
  local log, add = support.log()
  -- The outer child waits for an event set after the catch, not for a
  -- longer sleep: a loaded machine once ran the 3 ms sleep out first.
  local caught = async.event()
  local r = async.scope(function(outer)
    outer:spawn(function() caught:wait() add("outer child done") end)
    local ok, err = pcall(async.scope, function(inner)
      inner:spawn(function() async.sleep(0) error("inner failure", 0) end)
      async.sleep(10)
    end)
    add("caught " .. tostring(err))
    caught:set()                        -- the outer scope is not cancelled
    async.sleep(0)
    return "outer fine"
  end)
  lu.assertEquals(r, "outer fine")
  lu.assertEquals(log, {"caught inner failure", "outer child done"})
end

function TestScope:test_timeout_around_scope()
  local log, add = support.log()
  local ok, err = pcall(async.timeout, 0.002, async.scope, function(g)
    g:spawn(waits_forever(add, "child"))
    async.sleep(10)
  end)
  lu.assertFalse(ok)
  lu.assertTrue(async.is_timeout(err), tostring(err))
  lu.assertEquals(log, {"child cancelled"})
end

function TestScope:test_outside_task_is_an_error()
  local f = async.future()
  async.call_soon(function() f:resolve(pcall(async.scope, function() end)) end)
  local ok, err = f:await()
  lu.assertFalse(ok)
  lu.assertStrContains(err, "not inside a task")
end

function TestScope:test_tostring()
  async.scope(function(g)
    g:spawn(function() end)
    lu.assertStrContains(tostring(g), "Scope<1 children")
  end)
end

support.run(...)
