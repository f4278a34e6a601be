-- tests/test_task_end.lua: what a task keeps once it has ended: its
-- results or error in its object (its thread let go), and a failed task
-- nobody saw fail still usable as a task.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"

TestTaskEnd = support.suite {}

-- A task that failed before anyone looked changes its metatable (it gets a
-- finalizer, to be reported if collected unseen): it is still a Task to
-- every function that takes one.
function TestTaskEnd:test_failed_unseen_task_is_still_a_task()
  local t = async.spawn(function() error("boom", 0) end)
  local ok_task = async.spawn(function() return 1 end)
  async.sleep(0)
  lu.assertTrue(t:done())
  lu.assertTrue(async.is_awaitable(t))
  lu.assertEquals(getmetatable(t).__name, getmetatable(ok_task).__name)
  lu.assertStrContains(tostring(t), "task-")
  local results, errors = async.settle({t, ok_task})
  lu.assertEquals(errors[1], "boom")
  lu.assertEquals(results[2], 1)
  local done = async.wait({t}, {return_when = "first"})
  lu.assertIs(done[1], t)
  local ok, err = pcall(async.gather, t)
  lu.assertFalse(ok)
  lu.assertEquals(err, "boom")
end

-- A done task lets go of its thread (a kilobyte and more): its results, or
-- its error, stay with the Task object, whatever their number, nils and
-- a name (the task's extras) included.
function TestTaskEnd:test_done_task_lets_go_of_its_thread()
  local threads = setmetatable({}, {__mode = "k"})
  local function body(...)
    threads[coroutine.running()] = true
    async.sleep(0)
    return ...
  end
  local none = async.spawn(body)
  local one = async.spawn(body, "a")
  local nils = async.spawn(body, nil, 2, nil)
  local named = async.spawn(body, {1}, 2)
  named:set_name("named")
  local failed = async.spawn(function()
    threads[coroutine.running()] = true
    async.sleep(0)
    error({code = 7})
  end)
  local _, errors = async.settle({none, one, nils, named, failed})
  lu.assertEquals(errors[5], {code = 7})
  collectgarbage()
  collectgarbage()
  lu.assertNil(next(threads), "a done task's thread is still alive")
  lu.assertEquals(table.pack(none:await()).n, 0)
  lu.assertEquals(one:await(), "a")
  local r = table.pack(nils:await())
  lu.assertEquals(r.n, 3)
  lu.assertEquals({r[1], r[2], r[3]}, {nil, 2, nil})
  lu.assertEquals({named:result()}, {{1}, 2})
  lu.assertEquals(named:name(), "named")
  lu.assertEquals(failed:error(), {code = 7})
  local first = async.gather({none, one, nils, named})
  lu.assertEquals(first.n, 4)
  lu.assertEquals({first[1], first[2], first[3], first[4]}, {nil, "a", nil, {1}})
end

support.run(...)
