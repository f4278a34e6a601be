-- tests/test_signal.lua: async.signal with real signals sent to this
-- process (SIGUSR1, SIGUSR2, SIGHUP) and to a lasync child (SIGTERM):
-- wait, handlers as tasks, removal, timeouts and cancellation.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"
local signal = async.signal
local me = signal.getpid()

local function started(fn, ...)
  local t = async.spawn(fn, ...)
  async.sleep(0)
  return t
end

TestSignal = support.suite({}, 10)

function TestSignal:test_wait_returns_the_name()
  local t = started(signal.wait, "SIGUSR1")
  lu.assertEquals(t:state(), "waiting")
  signal.kill(me, "SIGUSR1")
  lu.assertEquals(t:await(), "SIGUSR1")
end

function TestSignal:test_every_waiter_wakes()
  local a, b = started(signal.wait, "USR1"), started(signal.wait, 10)  -- 10 is SIGUSR1
  signal.kill(me, "SIGUSR1")
  lu.assertEquals(a:await(), "SIGUSR1")
  lu.assertEquals(b:await(), "SIGUSR1")
end

function TestSignal:test_wait_timeout_and_cancel()
  local ok, err = pcall(signal.wait, "SIGUSR1", 0.01)
  lu.assertFalse(ok)
  lu.assertTrue(async.is_timeout(err))
  local t = started(signal.wait, "SIGUSR1")
  t:cancel()
  lu.assertTrue(async.is_cancelled(select(2, pcall(t.await, t))))
end

function TestSignal:test_handler_runs_as_a_task_each_time()
  local seen, got = {}, async.future()
  local h = signal.on("SIGUSR2", function(name)
    seen[#seen + 1] = {name, async.current()}
    if #seen == 3 then got:resolve() end
  end)
  lu.assertTrue(h:active())
  lu.assertEquals(tostring(h), "SignalHandler<SIGUSR2>")
  for _ = 1, 3 do
    signal.kill(me, "SIGUSR2")
    while #seen < _ do async.sleep(0.001) end   -- one at a time: signals coalesce
  end
  got:await()
  for i = 1, 3 do
    lu.assertEquals(seen[i][1], "SIGUSR2")
    lu.assertNotNil(seen[i][2])             -- ran inside a task
  end
  lu.assertNotIs(seen[1][2], seen[2][2])
  lu.assertTrue(h:remove())
  lu.assertFalse(h:remove())
  lu.assertFalse(h:active())
end

function TestSignal:test_a_dropped_handler_stays_until_removed()
  local got = async.future()
  local weak = setmetatable({signal.on("SIGHUP", function() got:resolve("still there") end)},
                            {__mode = "v"})
  collectgarbage()
  collectgarbage()
  lu.assertNotNil(weak[1])                -- held until removed
  signal.kill(me, "SIGHUP")
  lu.assertEquals(got:await(), "still there")
  lu.assertTrue(weak[1]:remove())
end

function TestSignal:test_bad_signals()
  lu.assertErrorMsgContains("unknown signal 'SIGNOPE'", signal.wait, "SIGNOPE")
  lu.assertErrorMsgContains("not a signal number", signal.on, 0, print)
  lu.assertErrorMsgContains("function expected", signal.on, "SIGUSR1", 42)
  local ok, err = pcall(signal.on, "SIGKILL", print)
  lu.assertFalse(ok)
  lu.assertEquals(err.code, "EINVAL")
end

-- A lasync program that shuts down cleanly on SIGTERM.
function TestSignal:test_sigterm_to_a_lasync_child()
  local p = async.process.spawn{support.LASYNC, "-e", [[
    local t = async.spawn(async.signal.wait, "SIGTERM")
    async.sleep(0)                        -- t waits: the handler is in place
    io.stdout:write("ready\n") io.stdout:flush()
    print("got " .. t:await())
  ]], stdout = "pipe"}
  lu.assertEquals(p.stdout:read_line(), "ready")
  p:kill("SIGTERM")
  lu.assertEquals(p.stdout:read_line(), "got SIGTERM")
  lu.assertEquals(p:wait(), 0)
  p:close()
end

support.run(...)
