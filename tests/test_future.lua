-- tests/test_future.lua: async.future(), a one-shot result slot.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"

TestFuture = support.suite {}

function TestFuture:test_resolve_then_await()
  local f = async.future()
  lu.assertFalse(f:done())
  lu.assertTrue(f:resolve(1, nil, 3))
  lu.assertTrue(f:done())
  local r = table.pack(f:await())
  lu.assertEquals(r.n, 3)
  lu.assertEquals(r[1], 1)
  lu.assertNil(r[2])
  lu.assertEquals(r[3], 3)
end

function TestFuture:test_resolve_with_nothing()
  local f = async.future()
  f:resolve()
  lu.assertEquals(select("#", f:await()), 0)
end

function TestFuture:test_await_wakes_a_waiting_task()
  local f = async.future()
  local t = async.spawn(function() return f:await() end)
  async.sleep(0)
  lu.assertEquals(t:state(), "waiting")
  f:resolve("a", "b")
  lu.assertEquals({t:await()}, {"a", "b"})
end

function TestFuture:test_async_await_on_future()
  local f = async.future()
  async.call_soon(function() f:resolve("via async.await") end)
  lu.assertEquals(async.await(f), "via async.await")
end

function TestFuture:test_resolve_twice_returns_false()
  local f = async.future()
  lu.assertTrue(f:resolve("first"))
  lu.assertFalse(f:resolve("second"))
  lu.assertFalse(f:reject("err"))
  lu.assertFalse(f:cancel())
  lu.assertEquals(f:await(), "first")
  lu.assertFalse(f:cancelled())
end

function TestFuture:test_reject()
  local f = async.future()
  local e = {code = "E"}
  local t = async.spawn(function() return f:await() end)
  async.sleep(0)
  lu.assertTrue(f:reject(e))
  lu.assertTrue(f:done())
  local ok, err = pcall(t.await, t)
  lu.assertFalse(ok)
  lu.assertIs(err, e)
  ok, err = pcall(f.await, f)           -- already done: raises at once
  lu.assertFalse(ok)
  lu.assertIs(err, e)
  lu.assertFalse(f:resolve(1))
  lu.assertFalse(f:reject("other"))
  lu.assertIs(f:error(), e)
end

function TestFuture:test_reject_with_string()
  local f = async.future()
  f:reject("string error")
  local ok, err = pcall(f.await, f)
  lu.assertFalse(ok)
  lu.assertEquals(err, "string error")
end

function TestFuture:test_reject_needs_a_value()
  local f = async.future()
  local ok, err = pcall(f.reject, f)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "bad argument")
  lu.assertFalse(f:done())
end

function TestFuture:test_cancel()
  local f = async.future()
  local t = async.spawn(function() return f:await() end)
  async.sleep(0)
  lu.assertTrue(f:cancel("no longer needed"))
  lu.assertTrue(f:done())
  lu.assertTrue(f:cancelled())
  local ok, err = pcall(t.await, t)
  lu.assertFalse(ok)
  lu.assertTrue(async.is_cancelled(err))
  lu.assertStrContains(tostring(err), "no longer needed")
  lu.assertTrue(async.is_cancelled(f:error()))
  lu.assertFalse(f:cancel())
  lu.assertFalse(f:resolve(1))
end

function TestFuture:test_await_already_done_future_does_not_wait()
  local f = async.future()
  f:resolve("ready")
  local other_ran = false
  local t = async.spawn(function() other_ran = true end)
  lu.assertEquals(f:await(), "ready")
  lu.assertFalse(other_ran)             -- no yield happened
  t:await()
end

function TestFuture:test_multiple_awaiters_all_get_values()
  local f = async.future()
  local ts = {}
  for i = 1, 4 do
    ts[i] = async.spawn(function()
      local a, b = f:await()
      return i, a, b
    end)
  end
  async.sleep(0)
  f:resolve("x", "y")
  for i = 1, 4 do
    lu.assertEquals({ts[i]:await()}, {i, "x", "y"})
  end
  lu.assertEquals({f:await()}, {"x", "y"})
end

function TestFuture:test_multiple_awaiters_all_get_error()
  local f = async.future()
  local ts = {}
  for i = 1, 3 do ts[i] = async.spawn(function() return f:await() end) end
  async.sleep(0)
  local e = {}
  f:reject(e)
  for i = 1, 3 do
    local ok, err = pcall(ts[i].await, ts[i])
    lu.assertFalse(ok)
    lu.assertIs(err, e)
  end
end

function TestFuture:test_cancelling_one_awaiter_cancels_the_future_for_all()
  -- documented asyncio semantics: cancelling a task awaiting a future
  -- cancels the future, so its other awaiters see a Cancelled too
  local f = async.future()
  local a = async.spawn(function() return f:await() end)
  local b = async.spawn(function() return f:await() end)
  async.sleep(0)
  a:cancel()
  local ok, err = pcall(b.await, b)
  lu.assertFalse(ok)
  lu.assertTrue(async.is_cancelled(err))
  lu.assertTrue(f:cancelled())
  lu.assertFalse(pcall(a.await, a))
end

function TestFuture:test_shield_and_wait_do_not_cancel_the_future()
  local f = async.future()
  local a = async.spawn(function() return async.shield(f) end)
  local b = async.spawn(function() return async.wait({f}) end)
  async.sleep(0)
  a:cancel(); b:cancel()
  lu.assertFalse(pcall(a.await, a))
  lu.assertFalse(pcall(b.await, b))
  lu.assertFalse(f:done())
  f:resolve("ok")
  lu.assertEquals(async.shield(f), "ok")
end

function TestFuture:test_remove_done_callback()
  local log, add = support.log()
  local f = async.future()
  local cb = function() add("removed") end
  f:add_done_callback(cb)
  f:add_done_callback(function() add("kept") end)
  lu.assertTrue(f:remove_done_callback(cb))
  lu.assertFalse(f:remove_done_callback(cb))
  f:resolve()
  async.sleep(0)
  lu.assertEquals(log, {"kept"})
end

function TestFuture:test_result_and_error()
  local f = async.future()
  local ok, err = pcall(f.result, f)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "not done")
  lu.assertNil(f:error())
  f:resolve(1, 2)
  lu.assertEquals({f:result()}, {1, 2})
  lu.assertNil(f:error())

  local g = async.future()
  g:reject("bad")
  ok, err = pcall(g.result, g)
  lu.assertFalse(ok)
  lu.assertEquals(err, "bad")
  lu.assertEquals(g:error(), "bad")
end

function TestFuture:test_result_works_outside_a_task()
  local f, out = async.future(), async.future()
  f:resolve(7)
  async.call_soon(function() out:resolve(f:result(), f:done(), f:error()) end)
  lu.assertEquals({out:await()}, {7, true})
end

function TestFuture:test_resolve_from_callback()
  local f = async.future()
  async.call_later(0.001, function() f:resolve("later") end)
  lu.assertEquals(f:await(), "later")
end

function TestFuture:test_done_callback()
  local log, add = support.log()
  local f = async.future()
  f:add_done_callback(function(x) add({same = x == f, current = async.current()}) end)
  f:add_done_callback(function() add("second") end)
  f:resolve(1)
  lu.assertEquals(#log, 0)              -- not called from inside resolve
  async.sleep(0)
  lu.assertEquals(#log, 2)
  lu.assertTrue(log[1].same)
  lu.assertNil(log[1].current)
  lu.assertEquals(log[2], "second")
  async.sleep(0)
  lu.assertEquals(#log, 2)              -- once
end

function TestFuture:test_done_callback_on_rejected_and_cancelled()
  local log, add = support.log()
  local f, g = async.future(), async.future()
  f:add_done_callback(function(x) add("f " .. tostring(x:error())) end)
  g:add_done_callback(function(x) add("g " .. tostring(x:cancelled())) end)
  f:reject("e")
  g:cancel()
  async.sleep(0)
  lu.assertEquals(log, {"f e", "g true"})
end

function TestFuture:test_done_callback_on_done_future_runs_soon()
  local f = async.future()
  f:resolve()
  local got
  f:add_done_callback(function(x) got = x end)
  lu.assertNil(got)
  async.sleep(0)
  lu.assertIs(got, f)
end

function TestFuture:test_done_callback_needs_a_function()
  local f = async.future()
  lu.assertFalse(pcall(f.add_done_callback, f, 5))
end

function TestFuture:test_tostring()
  local f = async.future()
  lu.assertEquals(tostring(f), "Future<pending>")
  f:resolve()
  lu.assertEquals(tostring(f), "Future<done>")
  local g = async.future()
  g:reject("x")
  lu.assertEquals(tostring(g), "Future<failed>")
  local h = async.future()
  h:cancel()
  lu.assertEquals(tostring(h), "Future<cancelled>")
end

function TestFuture:test_is_awaitable()
  lu.assertTrue(async.is_awaitable(async.future()))
  lu.assertFalse(async.is_awaitable({}))
  lu.assertFalse(async.is_awaitable(nil))
end

function TestFuture:test_unreferenced_awaited_future_is_kept_alive()
  -- only the waiting task and a callback know the future
  local t = async.spawn(function()
    local f = async.future()
    async.call_later(0.002, function() f:resolve("kept") end)
    return f:await()
  end)
  async.sleep(0)
  collectgarbage(); collectgarbage()
  lu.assertEquals(t:await(), "kept")
end

function TestFuture:test_methods_check_self()
  local f = async.future()
  lu.assertFalse(pcall(f.resolve, {}))
  lu.assertFalse(pcall(f.await, "x"))
end

support.run(...)
