-- tests/test_task.lua: tasks: spawn, await, the Task methods, ordering of
-- wakes, sleeping, and misuse errors.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"

-- Returns ok, err of calling f(...), for asserting on error values.
local function catch(f, ...)
  return pcall(f, ...)
end

------------------------------------------------------------ spawn/await

TestSpawn = support.suite {}

function TestSpawn:test_await_returns_all_results_including_nils()
  local t = async.spawn(function() return 1, nil, 3 end)
  local r = table.pack(t:await())
  lu.assertEquals(r.n, 3)
  lu.assertEquals(r[1], 1)
  lu.assertNil(r[2])
  lu.assertEquals(r[3], 3)
end

function TestSpawn:test_await_trailing_nils_are_kept()
  local t = async.spawn(function() async.sleep(0) return nil, nil end)
  lu.assertEquals(select("#", t:await()), 2)
end

function TestSpawn:test_await_no_results()
  local t = async.spawn(function() end)
  lu.assertEquals(select("#", t:await()), 0)
end

function TestSpawn:test_await_twice_gives_same_results()
  local t = async.spawn(function() async.sleep(0) return "a", "b" end)
  local a1, b1 = t:await()
  local a2, b2 = t:await()
  lu.assertEquals({a1, b1, a2, b2}, {"a", "b", "a", "b"})
  lu.assertEquals({async.await(t)}, {"a", "b"})
end

function TestSpawn:test_args_including_nils()
  local t = async.spawn(function(...)
    return select("#", ...), ...
  end, nil, 2, nil)
  local r = table.pack(t:await())
  lu.assertEquals(r.n, 4)
  lu.assertEquals(r[1], 3)
  lu.assertNil(r[2])
  lu.assertEquals(r[3], 2)
  lu.assertNil(r[4])
end

function TestSpawn:test_spawn_with_many_args()
  -- run in a subprocess: a crash must not take the suite down with it
  local r = support.sh(support.shell_quote(support.LASYNC) .. " -e " .. support.shell_quote([[
    local args = {}
    for i = 1, 300 do args[i] = i end
    local t = async.spawn(function(...) return select("#", ...), select(300, ...) end,
                          table.unpack(args))
    print(t:await())
  ]]))
  lu.assertEquals(r.status, 0, "exit status " .. tostring(r.status) .. " " .. r.stderr)
  lu.assertEquals(r.stdout, "300\t300\n")
end

function TestSpawn:test_many_results()
  local big = {}
  for i = 1, 5000 do big[i] = i end
  local t = async.spawn(function() async.sleep(0) return table.unpack(big) end)
  local r = table.pack(t:await())
  lu.assertEquals(r.n, 5000)
  lu.assertEquals(r[5000], 5000)
end

function TestSpawn:test_spawn_callable_table()
  local obj = setmetatable({}, {__call = function(self, x) return x * 2 end})
  lu.assertEquals(async.spawn(obj, 21):await(), 42)
end

function TestSpawn:test_spawn_non_function_is_a_clear_error()
  local ok, err = catch(async.spawn, 42)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "bad argument #1")
  lu.assertStrContains(err, "function expected, got number")
  ok, err = catch(async.spawn)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "function expected")
  ok, err = catch(async.spawn, {})
  lu.assertFalse(ok)
  lu.assertStrContains(err, "function expected, got table")
end

function TestSpawn:test_spawned_task_does_not_run_until_spawner_waits()
  local ran = false
  local t = async.spawn(function() ran = true end)
  lu.assertFalse(ran)
  lu.assertEquals(t:state(), "ready")
  t:await()
  lu.assertTrue(ran)
end

function TestSpawn:test_forgotten_task_runs_to_completion()
  local f = async.future()
  do
    async.spawn(function()
      collectgarbage()
      async.sleep(0.002)
      collectgarbage()
      f:resolve("finished")
    end)
  end
  collectgarbage(); collectgarbage()
  lu.assertEquals(f:await(), "finished")
end

function TestSpawn:test_await_of_non_awaitable_is_an_error()
  local ok, err = catch(async.await, 5)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "task or future expected, got number")
end

function TestSpawn:test_spawn_from_a_callback()
  local f = async.future()
  async.call_soon(function()
    local t = async.spawn(function(x) async.sleep(0) return x end, "spawned in callback")
    f:resolve(t)
  end)
  local t = f:await()
  lu.assertEquals(t:await(), "spawned in callback")
end

function TestSpawn:test_many_tasks()
  local n, ts, sum = 2000, {}, 0
  for i = 1, n do
    ts[i] = async.spawn(function() async.sleep(0) async.sleep(0) return i end)
  end
  for i = 1, n do sum = sum + ts[i]:await() end
  lu.assertEquals(sum, n * (n + 1) // 2)
end

function TestSpawn:test_long_await_chain()
  -- each task awaits the previous one: wakes go through the queue, so the
  -- C stack does not grow with the chain
  local f = async.future()
  local prev = async.spawn(function() return f:await() end)
  for _ = 1, 500 do
    local p = prev
    prev = async.spawn(function() return p:await() + 1 end)
  end
  async.sleep(0)
  f:resolve(0)
  lu.assertEquals(prev:await(), 500)
end

------------------------------------------------------------ methods

TestTaskMethods = support.suite {}

function TestTaskMethods:test_done_and_cancelled()
  local f = async.future()
  local t = async.spawn(function() return f:await() end)
  lu.assertFalse(t:done())
  lu.assertFalse(t:cancelled())
  f:resolve(1)
  t:await()
  lu.assertTrue(t:done())
  lu.assertFalse(t:cancelled())
end

function TestTaskMethods:test_result_raises_if_not_done()
  local t = async.spawn(function() async.sleep(0) return 1 end)
  local ok, err = catch(t.result, t)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "not done")
  t:await()
  lu.assertEquals(t:result(), 1)
end

function TestTaskMethods:test_result_returns_all_values()
  local t = async.spawn(function() return 1, nil, 3 end)
  t:await()
  local r = table.pack(t:result())
  lu.assertEquals(r.n, 3)
  lu.assertEquals(r[3], 3)
end

function TestTaskMethods:test_result_raises_the_error_of_a_failed_task()
  local e = {code = "X"}
  local t = async.spawn(function() error(e) end)
  pcall(t.await, t)
  local ok, err = catch(t.result, t)
  lu.assertFalse(ok)
  lu.assertIs(err, e)
end

function TestTaskMethods:test_error()
  local pending = async.spawn(function() async.sleep(0) end)
  lu.assertNil(pending:error())
  pending:await()
  lu.assertNil(pending:error())         -- done: no error
  local bad = async.spawn(function() error("oops", 0) end)
  pcall(bad.await, bad)
  lu.assertEquals(bad:error(), "oops")
  local c = async.spawn(function() async.sleep(10) end)
  async.sleep(0)
  c:cancel("stop")
  pcall(c.await, c)
  lu.assertTrue(async.is_cancelled(c:error()))
end

function TestTaskMethods:test_name_default_and_set_name()
  local t = async.spawn(function() end)
  lu.assertEquals(t:name(), "task-" .. t:id())
  lu.assertIs(t:set_name("worker"), t)
  lu.assertEquals(t:name(), "worker")
  lu.assertStrContains(tostring(t), "worker")
  t:await()
  lu.assertEquals(t:name(), "worker")
  lu.assertErrorMsgContains("string expected", t.set_name, t, {})
end

function TestTaskMethods:test_ids_are_distinct_and_increasing()
  local a = async.spawn(function() end)
  local b = async.spawn(function() end)
  lu.assertEquals(math.type(a:id()), "integer")
  lu.assertTrue(b:id() > a:id())
  a:await(); b:await()
end

function TestTaskMethods:test_states()
  local f = async.future()
  local inside
  local t = async.spawn(function()
    inside = async.current():state()
    f:await()
  end)
  lu.assertEquals(t:state(), "ready")
  async.sleep(0)
  lu.assertEquals(inside, "running")
  lu.assertEquals(t:state(), "waiting")
  f:resolve()
  lu.assertEquals(t:state(), "ready")  -- woken, not yet run
  t:await()
  lu.assertEquals(t:state(), "done")

  local bad = async.spawn(function() error("x") end)
  pcall(bad.await, bad)
  lu.assertEquals(bad:state(), "failed")

  local c = async.spawn(function() async.sleep(10) end)
  async.sleep(0)
  c:cancel()
  pcall(c.await, c)
  lu.assertEquals(c:state(), "cancelled")
  lu.assertEquals(async.current():state(), "running")
end

function TestTaskMethods:test_tostring()
  local t = async.spawn(function() async.sleep(0) end)
  lu.assertEquals(tostring(t), "Task<task-" .. t:id() .. " ready>")
  t:set_name("n")
  t:await()
  lu.assertEquals(tostring(t), "Task<n done>")
end

function TestTaskMethods:test_done_callback_runs_from_loop_with_the_task()
  local log, add = support.log()
  local f = async.future()
  local t = async.spawn(function() f:await() return "r" end)
  t:add_done_callback(function(x)
    add({same = x == t, current = async.current(), done = x:done()})
  end)
  async.sleep(0)
  lu.assertEquals(#log, 0)
  f:resolve()
  t:await()
  async.sleep(0)
  lu.assertEquals(#log, 1)
  lu.assertTrue(log[1].same)
  lu.assertTrue(log[1].done)
  lu.assertNil(log[1].current)          -- not run inside any task
end

function TestTaskMethods:test_done_callbacks_run_in_order_once()
  local log, add = support.log()
  local t = async.spawn(function() async.sleep(0) end)
  t:add_done_callback(function() add(1) end)
  t:add_done_callback(function() add(2) end)
  t:await()
  async.sleep(0)
  async.sleep(0)
  lu.assertEquals(log, {1, 2})
end

function TestTaskMethods:test_done_callback_on_done_task_runs_soon_not_now()
  local t = async.spawn(function() end)
  t:await()
  local got
  t:add_done_callback(function(x) got = x end)
  lu.assertNil(got)
  async.sleep(0)
  lu.assertIs(got, t)
end

function TestTaskMethods:test_remove_done_callback()
  local log, add = support.log()
  local t = async.spawn(function() async.sleep(0) end)
  local cb1 = function() add(1) end
  local cb2 = function() add(2) end
  t:add_done_callback(cb1)
  t:add_done_callback(cb2)
  lu.assertTrue(t:remove_done_callback(cb1))
  lu.assertFalse(t:remove_done_callback(cb1))
  lu.assertFalse(t:remove_done_callback(function() end))
  t:await()
  async.sleep(0)
  lu.assertEquals(log, {2})
end

function TestTaskMethods:test_done_callback_error_does_not_stop_others()
  -- the failing callback is reported on stderr (test_cli checks that)
  local log, add = support.log()
  local t = async.spawn(function() async.sleep(0) end)
  t:add_done_callback(function() error("callback failure") end)
  t:add_done_callback(function() add("second") end)
  t:await()
  async.sleep(0)
  lu.assertEquals(log, {"second"})
end

function TestTaskMethods:test_result_of_cancelled_task_raises_cancelled()
  local t = async.spawn(function() async.sleep(10) end)
  async.sleep(0)
  t:cancel("gone")
  pcall(t.await, t)
  local ok, err = pcall(t.result, t)
  lu.assertFalse(ok)
  lu.assertTrue(async.is_cancelled(err))
  lu.assertStrContains(tostring(err), "gone")
end

function TestTaskMethods:test_set_name_accepts_a_number()
  local t = async.spawn(function() end)
  lu.assertEquals(t:set_name(5):name(), "5")
  t:await()
end

function TestTaskMethods:test_await_of_ended_task_works_outside_a_task()
  local t = async.spawn(function() return "r", nil end)
  t:await()
  local f = async.future()
  async.call_soon(function() f:resolve(pcall(function() return select("#", t:await()), t:await() end)) end)
  lu.assertEquals({f:await()}, {true, 2, "r"})
end

function TestTaskMethods:test_stack_of_a_waiting_task()
  local t = async.spawn(function()
    local function waits_in_here() async.sleep(10) end
    waits_in_here()
  end)
  lu.assertNil(async.current():stack())  -- running
  async.sleep(0)
  local st = t:stack()
  lu.assertIsString(st)
  lu.assertStrContains(st, "waits_in_here")
  t:cancel()
  pcall(t.await, t)
  lu.assertNil(t:stack())                -- ended
end

------------------------------------------------------------ current

TestCurrent = support.suite {}

function TestCurrent:test_main_task_is_current()
  local me = async.current()
  lu.assertNotNil(me)
  lu.assertTrue(async.is_awaitable(me))
  lu.assertEquals(me:state(), "running")
end

function TestCurrent:test_current_in_spawned_task()
  local seen
  local t = async.spawn(function() seen = async.current() end)
  t:await()
  lu.assertIs(seen, t)
end

function TestCurrent:test_current_is_nil_in_callback()
  local f = async.future()
  async.call_soon(function() f:resolve(async.current() == nil) end)
  lu.assertTrue(f:await())
end

function TestCurrent:test_task_cannot_await_itself()
  local me = async.current()
  local ok, err = catch(me.await, me)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "cannot await itself")
  local t = async.spawn(function()
    local self = async.current()
    return pcall(self.await, self)
  end)
  local ok2, err2 = t:await()
  lu.assertFalse(ok2)
  lu.assertStrContains(err2, "cannot await itself")
end

function TestCurrent:test_gather_or_shield_of_itself_is_an_error()
  -- like t:await(), waiting for oneself through gather or shield can only
  -- deadlock; it should raise at once rather than hang until cancelled
  local me = async.current()
  local ok, err = pcall(async.timeout, 0.05, async.gather, me)
  lu.assertFalse(ok)
  lu.assertFalse(async.is_timeout(err), "gather(current task) hung until the timeout")
  ok, err = pcall(async.timeout, 0.05, async.shield, me)
  lu.assertFalse(ok)
  lu.assertFalse(async.is_timeout(err), "shield(current task) hung until the timeout")
end

function TestCurrent:test_sleep_outside_task_is_an_error()
  local f = async.future()
  async.call_soon(function()
    local ok, err = pcall(async.sleep, 0)
    local fut = async.future()
    local ok2, err2 = pcall(fut.await, fut)
    local ok3, err3 = pcall(async.await, fut)
    f:resolve({ok, err, ok2, err2, ok3, err3})
  end)
  local r = f:await()
  lu.assertFalse(r[1])
  lu.assertStrContains(r[2], "not inside a task")
  lu.assertFalse(r[3])
  lu.assertStrContains(r[4], "not inside a task")
  lu.assertFalse(r[5])
  lu.assertStrContains(r[6], "not inside a task")
end

function TestCurrent:test_task_await_outside_task_is_an_error()
  local f = async.future()
  local t = async.spawn(function() async.sleep(0.001) end)
  async.call_soon(function()
    local ok, err = pcall(t.await, t)
    f:resolve(ok, err)
  end)
  local ok, err = f:await()
  lu.assertFalse(ok)
  lu.assertStrContains(err, "not inside a task")
  t:await()
end

function TestCurrent:test_main_task_is_task_1()
  local me = async.current()
  lu.assertEquals(me:id(), 1)
  lu.assertEquals(me:name(), "task-1")
end

function TestCurrent:test_cannot_wait_where_lua_cannot_yield()
  local ok, err = pcall(table.sort, {3, 1, 2}, function(a, b) async.sleep(0) return a < b end)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "cannot wait here")
  local obj = setmetatable({}, {__tostring = function() async.sleep(0) return "x" end})
  ok, err = pcall(tostring, obj)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "cannot wait here")
  ok, err = pcall(string.gsub, "abc", "b", function() async.sleep(0) end)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "cannot wait here")
end

function TestCurrent:test_lua_metamethods_and_dofile_can_wait()
  local obj = setmetatable({}, {
    __index = function(_, k) async.sleep(0.001) return k .. "!" end,
    __call = function(_, x) async.sleep(0) return x * 2 end,
  })
  lu.assertEquals(obj.key, "key!")
  lu.assertEquals(obj(21), 42)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write("async.sleep(0.001) return 'from dofile'")
  f:close()
  local ok, r = pcall(dofile, path)
  os.remove(path)
  lu.assertTrue(ok, tostring(r))
  lu.assertEquals(r, "from dofile")
end

------------------------------------------------------------ errors

TestTaskErrors = support.suite {}

function TestTaskErrors:test_await_reraises_string_error()
  local t = async.spawn(function() error("bad thing") end)
  local ok, err = pcall(t.await, t)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "bad thing")
  lu.assertEquals(err, t:error())
end

function TestTaskErrors:test_await_reraises_same_table_error()
  local e = setmetatable({code = 7}, {__tostring = function() return "E7" end})
  local t = async.spawn(function() async.sleep(0) error(e) end)
  local ok, err = pcall(t.await, t)
  lu.assertFalse(ok)
  lu.assertIs(err, e)
  local ok2, err2 = pcall(t.await, t)   -- and again
  lu.assertFalse(ok2)
  lu.assertIs(err2, e)
end

function TestTaskErrors:test_error_value_passes_through_a_chain()
  local e = {}
  local a = async.spawn(function() async.sleep(0) error(e) end)
  local b = async.spawn(function() return a:await() end)
  local c = async.spawn(function() return b:await() end)
  local ok, err = pcall(c.await, c)
  lu.assertFalse(ok)
  lu.assertIs(err, e)
end

function TestTaskErrors:test_traceback_of_failed_task()
  local t = async.spawn(function()
    local function deep_function_name() error("deep failure") end
    deep_function_name()
  end)
  pcall(t.await, t)
  local tb = t:traceback()
  lu.assertStrContains(tb, "deep failure")
  lu.assertStrContains(tb, "stack traceback")
  lu.assertStrContains(tb, "deep_function_name")
  lu.assertStrContains(tb, "test_task.lua")
end

function TestTaskErrors:test_no_traceback_for_done_task()
  local t = async.spawn(function() return 1 end)
  t:await()
  lu.assertNil(t:traceback())
end

function TestTaskErrors:test_chained_traceback_names_the_child()
  local child = async.spawn(function()
    local function child_fails_here() error("child error") end
    async.sleep(0)
    child_fails_here()
  end)
  child:set_name("the-child")
  local parent = async.spawn(function()
    local function parent_awaits_here() return child:await() end
    parent_awaits_here()
  end)
  local ok, err = pcall(parent.await, parent)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "child error")
  local tb = parent:traceback()
  lu.assertStrContains(tb, "parent_awaits_here")
  lu.assertStrContains(tb, "re-raised from the-child")
  lu.assertStrContains(tb, "child_fails_here")
  -- the child's part comes after the parent's own frames
  lu.assertTrue(tb:find("re-raised from", 1, true) > tb:find("parent_awaits_here", 1, true))
end

function TestTaskErrors:test_no_chain_when_parent_raises_its_own_error()
  local child = async.spawn(function() error("child error") end)
  local parent = async.spawn(function()
    pcall(child.await, child)
    error("parent's own")
  end)
  pcall(parent.await, parent)
  local tb = parent:traceback()
  lu.assertStrContains(tb, "parent's own")
  lu.assertNotStrContains(tb, "re-raised from")
end

------------------------------------------------------------ ordering

-- On the virtual clock: deadline order is then exact, not at the mercy of
-- how long a loaded machine takes between arming one sleep and the next.
TestOrder = support.suite({}, {timeout = 5, virtual_clock = true})

function TestOrder:test_awaiters_of_a_future_wake_fifo()
  local log, add = support.log()
  local f = async.future()
  local ts = {}
  for i = 1, 5 do
    ts[i] = async.spawn(function() f:await() add(i) end)
  end
  async.sleep(0)                        -- all five are now waiting, in order
  f:resolve()
  for i = 1, 5 do ts[i]:await() end
  lu.assertEquals(log, {1, 2, 3, 4, 5})
end

function TestOrder:test_awaiters_of_a_task_wake_fifo()
  -- task i starts waiting in round 5 - i, so the waiting order (4, 3, 2, 1)
  -- differs from the spawn order
  local log, add = support.log()
  local f = async.future()
  local target = async.spawn(function() f:await() end)
  local ts = {}
  for i = 1, 4 do
    ts[i] = async.spawn(function()
      for _ = 1, 5 - i do async.sleep(0) end
      target:await()
      add(i)
    end)
  end
  for _ = 1, 8 do async.sleep(0) end
  f:resolve()
  for i = 1, 4 do ts[i]:await() end
  lu.assertEquals(log, {4, 3, 2, 1})
end

function TestOrder:test_awaiters_wake_in_waiting_order_not_spawn_order()
  local log, add = support.log()
  local f = async.future()
  local ts = {}
  for i, rounds in ipairs {2, 0, 3, 1} do
    ts[i] = async.spawn(function()
      for _ = 1, rounds do async.sleep(0) end
      f:await()
      add(i)
    end)
  end
  for _ = 1, 6 do async.sleep(0) end
  f:resolve()
  for i = 1, 4 do ts[i]:await() end
  lu.assertEquals(log, {2, 4, 1, 3})
end

function TestOrder:test_sleep0_round_robin()
  local log, add = support.log()
  local ts = {}
  for i = 1, 3 do
    ts[i] = async.spawn(function()
      for _ = 1, 3 do add(i); async.sleep(0) end
    end)
  end
  for i = 1, 3 do ts[i]:await() end
  lu.assertEquals(log, {1, 2, 3, 1, 2, 3, 1, 2, 3})
end

function TestOrder:test_sleep0_lets_other_ready_tasks_run()
  local ran = false
  local t = async.spawn(function() ran = true end)
  async.sleep(0)
  lu.assertTrue(ran)
  t:await()
end

function TestOrder:test_sleep_negative_is_like_zero()
  local ran = false
  local t = async.spawn(function() ran = true end)
  async.sleep(-1)
  lu.assertTrue(ran)
  t:await()
end

function TestOrder:test_sleeps_wake_in_deadline_order()
  local log, add = support.log()
  local ts = {}
  for i, d in ipairs {0.03, 0.01, 0.02, 0.005} do
    ts[i] = async.spawn(function() async.sleep(d) add(d) end)
  end
  for i = 1, #ts do ts[i]:await() end
  lu.assertEquals(log, {0.005, 0.01, 0.02, 0.03})
end

function TestOrder:test_equal_sleeps_wake_fifo()
  local log, add = support.log()
  local ts = {}
  for i = 1, 6 do
    ts[i] = async.spawn(function() async.sleep(0.005) add(i) end)
  end
  for i = 1, #ts do ts[i]:await() end
  lu.assertEquals(log, {1, 2, 3, 4, 5, 6})
end

function TestOrder:test_tasks_and_callbacks_share_one_fifo()
  local log, add = support.log()
  local a = async.spawn(function() add("task a") end)
  async.call_soon(add, "callback")
  local b = async.spawn(function() add("task b") end)
  async.sleep(0)
  lu.assertEquals(log, {"task a", "callback", "task b"})
  a:await(); b:await()
end

function TestOrder:test_huge_sleep_arms_no_timer()
  local t = async.spawn(async.sleep, 1e9)
  async.sleep(0)
  lu.assertEquals(t:state(), "waiting")
  lu.assertEquals(support.timers(), 0)
  t:cancel()
  pcall(t.await, t)
  lu.assertTrue(t:cancelled())
end

function TestOrder:test_sleep_returns_nothing()
  lu.assertEquals(select("#", async.sleep(0)), 0)
  lu.assertEquals(select("#", async.sleep(0.001)), 0)
end

function TestOrder:test_sleep_argument_errors()
  local ok, err = catch(async.sleep, 0 / 0)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "bad argument #1")
  lu.assertStrContains(err, "NaN")
  ok, err = catch(async.sleep, "x")
  lu.assertFalse(ok)
  lu.assertStrContains(err, "number expected, got string")
  ok, err = catch(async.sleep)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "number expected")
  ok, err = catch(async.sleep, {})
  lu.assertFalse(ok)
  lu.assertStrContains(err, "number expected, got table")
end

function TestOrder:test_sleep_numeric_string_is_accepted()
  -- Lua's usual number coercion (luaL_checknumber)
  async.sleep("0")
end

support.run(...)
