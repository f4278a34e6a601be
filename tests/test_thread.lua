-- tests/test_thread.lua: async.thread.spawn, a host of its own on another
-- thread, and the channels between the two.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"
local net = require "async.net"

local function threads()
  for line in io.lines("/proc/self/status") do
    local n = line:match("^Threads:%s*(%d+)")
    if n then return tonumber(n) end
  end
end

local function fails(fn, ...)
  local ok, err = pcall(fn, ...)
  lu.assertFalse(ok)
  return err
end

TestThread = support.suite {}

function TestThread:test_results_and_arguments()
  local th = async.thread.spawn(function(ch, a, t, s)
    return a + 1, t.x[1], #s, math.type(a), ch ~= nil
  end, 41, {x = {"nested"}}, "z\0z")
  lu.assertEquals({th:join()}, {42, "nested", 3, "integer", true})
  lu.assertTrue(th:done())
  lu.assertEquals({th:join()}, {42, "nested", 3, "integer", true})   -- again
  lu.assertStrContains(tostring(th), "Thread<done>")
end

function TestThread:test_channels_both_ways()
  local th = async.thread.spawn(function(ch)
    local n = 0
    for msg in ch:iter() do
      n = n + 1
      ch:send({echo = msg, n = n})
    end
    return "closed after " .. n
  end)
  for i = 1, 50 do th:send(i % 2 == 0 and {i, tostring(i)} or i) end
  for i = 1, 50 do
    local r = th:recv()
    lu.assertEquals(r.n, i)
    if i % 2 == 0 then lu.assertEquals(r.echo, {i, tostring(i)}) else lu.assertEquals(r.echo, i) end
  end
  th:close()                               -- the thread's iter ends
  lu.assertEquals(th:join(), "closed after 50")
  lu.assertNil(th:recv())                  -- it has ended: nothing more comes
  lu.assertStrContains(fails(th.send, th, 1), "this side of the channel is closed")
end

function TestThread:test_the_thread_runs_its_own_loop_and_tasks()
  local th = async.thread.spawn(function(ch)
    local order = {}
    local r = async.gather(
      function() async.sleep(0.02) order[#order + 1] = "slow" return 1 end,
      function() order[#order + 1] = "fast" return 2 end,
      function() return async.to_thread(function() return 3 end) end)
    ch:send(table.concat(order, ","))
    return r[1] + r[2] + r[3]
  end)
  lu.assertEquals(th:recv(), "fast,slow")
  lu.assertEquals(th:join(), 6)
end

function TestThread:test_recv_suspends_only_the_task()
  local log = {}
  local th = async.thread.spawn(function(ch)
    local go = ch:recv()                   -- waits for the parent's word
    ch:send("reply to " .. go)
  end)
  local reader = async.spawn(function()
    log[#log + 1] = "waiting"
    local reply = th:recv()
    log[#log + 1] = reply
  end)
  async.sleep(0)
  lu.assertEquals(reader:state(), "waiting")
  log[#log + 1] = "other work"
  th:send("go")
  reader:await()
  lu.assertEquals(log, {"waiting", "other work", "reply to go"})
  th:join()
end

function TestThread:test_error_in_the_thread()
  local th = async.thread.spawn(function()
    local function failing_in_thread() error("thread failure") end
    failing_in_thread()
  end)
  local err = fails(th.join, th)
  lu.assertStrMatches(err, ".*test_thread.lua:%d+: thread failure")
  local t = async.spawn(th.join, th)
  fails(t.await, t)
  lu.assertStrContains(t:traceback(), "re-raised from a thread")
  lu.assertStrContains(t:traceback(), "failing_in_thread")
  th = async.thread.spawn(function() error({code = 3}) end)
  lu.assertEquals(fails(th.join, th), {code = 3})
end

function TestThread:test_cancel_the_thread()
  -- The thread says it is in its pcall before we cancel: order by its word,
  -- not by a 10 ms guess that it got there.
  local th = async.thread.spawn(function(ch)
    local ok, err = pcall(function()
      ch:send("running")
      ch:recv()                            -- waits forever
    end)
    ch:send(async.is_cancelled(err) and "saw the cancel" or "?")
    error(err, 0)
  end)
  lu.assertEquals(th:recv(), "running")
  th:cancel()
  lu.assertEquals(th:recv(), "saw the cancel")
  lu.assertTrue(async.is_cancelled(fails(th.join, th)))
end

function TestThread:test_cancel_a_task_waiting_in_recv_loses_nothing()
  local th = async.thread.spawn(function(ch)
    ch:recv()                              -- "go"
    ch:send("first")
    ch:send("second")
  end)
  local waiter = async.spawn(th.recv, th)
  async.sleep(0)
  waiter:cancel()
  lu.assertTrue(async.is_cancelled(fails(waiter.await, waiter)))
  th:send("go")
  lu.assertEquals(th:recv(), "first")
  lu.assertEquals(th:recv(), "second")
  lu.assertNil(th:recv())
  th:join()
end

function TestThread:test_cancel_a_task_waiting_in_join()
  local th = async.thread.spawn(function(ch) return ch:recv() end)
  local waiter = async.spawn(th.join, th)
  async.sleep(0)
  waiter:cancel()
  lu.assertTrue(async.is_cancelled(fails(waiter.await, waiter)))
  th:send("done")
  lu.assertEquals(th:join(), "done")
end

function TestThread:test_bad_input()
  local up = 1
  lu.assertStrContains(fails(async.thread.spawn, function() return up end),
                       "function with upvalue 'up' cannot cross")
  lu.assertStrContains(fails(async.thread.spawn, print), "C function cannot cross")
  lu.assertStrContains(fails(async.thread.spawn, function() end, io.stdout),
                       "args[1]: userdata cannot cross to a thread")
  local th = async.thread.spawn(function(ch) return ch:recv() end)
  lu.assertStrContains(fails(th.send, th, {conn = io.stdout}),
                       "send: message.conn: userdata cannot cross to another thread")
  lu.assertStrContains(fails(th.send, th, nil), "nil cannot be sent")
  th:send("end")
  lu.assertEquals(th:join(), "end")
  lu.assertStrContains(fails(th.send, th, 1), "the other side has ended")
end

function TestThread:test_a_forgotten_thread_runs_to_its_end()
  local done = async.future()
  async.thread.spawn(function() end):join()   -- (a sanitizer's own thread starts with the first)
  local before = threads()
  do
    local th = async.thread.spawn(function(ch) async.sleep(0.01) ch:send("finished") end)
    async.spawn(function() done:resolve(th:recv()) end)
  end
  collectgarbage()
  lu.assertEquals(done:await(), "finished")
  -- its end is noticed from the loop: wait for it (the suite's timeout
  -- bounds this), not for 100 turns a loaded machine may run out first
  while threads() ~= before do async.sleep(0.001) end
end

function TestThread:test_threads_in_parallel()
  local list = {}
  for i = 1, 4 do
    list[i] = async.thread.spawn(function(_, n)
      local s = 0
      for k = 1, n do s = s + k end
      return s
    end, i * 100000)
  end
  for i = 1, 4 do
    local n = i * 100000
    lu.assertEquals(list[i]:join(), n * (n + 1) // 2)
  end
end

function TestThread:test_tcp_server_in_a_thread()
  local th = async.thread.spawn(function(ch)
    local server = require("async.net").listen("127.0.0.1", 0, function(conn)
      for line in conn:lines() do conn:write(line:upper() .. "\n") end
    end)
    local _, port = server:address()
    ch:send(port)
    ch:recv()                              -- until the parent says stop
    server:shutdown()
    return "served"
  end)
  local port = th:recv()
  local conns = {}
  for i = 1, 3 do
    conns[i] = net.connect("127.0.0.1", port)
    conns[i]:write("hello " .. i .. "\n")
  end
  for i = 1, 3 do
    lu.assertEquals(conns[i]:read_line(), "HELLO " .. i)
    conns[i]:close()
  end
  th:send("stop")
  lu.assertEquals(th:join(), "served")
end

support.run(...)
