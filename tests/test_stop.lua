-- tests/test_stop.lua: every way a program could refuse to stop (issue 13,
-- "code that cannot be stopped"), each run as a real lasync process that
-- gets real signals: a loop that never waits (SIGINT, SIGTERM, at the REPL
-- too), a shutdown that never finishes (a task that catches its
-- cancellation and waits again, a thread that never ends), os.exit in a
-- worker thread. Every process runs under a deadline (KILL after 20 s), so
-- a regression fails the test, with status 137, instead of hanging the
-- suite. Readiness is a file the script creates; ordering never relies on
-- sleeping.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"

local q = support.shell_quote
local BIN = q(support.LASYNC)
local GUARDED = "timeout -s KILL 20 " .. BIN       -- the deadline of a process run directly
local PY = io.open("/usr/bin/python3") and "/usr/bin/python3" or "python3"

-- Waits (bounded) until path exists.
local function wait_for(path)
  return "i=0; while [ ! -e " .. q(path) .. " ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done"
end

-- Runs the script source with lasync (options before it, then the paths
-- of its ready files as arguments). steps: a list of {ready = n} (wait for
-- the script's n-th ready file, its arg[n]) and {signal = "INT"}. Returns
-- sh's result, with r.rc the exit status of lasync.
local function run(source, steps, options)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. q(dir)))
  local script, readies = dir .. "/s.lua", {}
  for i = 1, 4 do readies[i] = dir .. "/ready" .. i end
  support.write_file(script, source)
  local cmd = {BIN .. " " .. (options or "") .. " " .. q(script) .. " "
               .. table.concat(readies, " ") .. " </dev/null & pid=$!",
               "( sleep 20; kill -KILL $pid ) 2>/dev/null & guard=$!"}
  for _, s in ipairs(steps or {}) do
    if s.ready then cmd[#cmd + 1] = wait_for(readies[s.ready])
    else cmd[#cmd + 1] = "kill -" .. s.signal .. " $pid" end
  end
  cmd[#cmd + 1] = "wait $pid; echo rc=$?; kill $guard 2>/dev/null"
  local r = support.sh(table.concat(cmd, "\n"))
  os.execute("rm -rf " .. q(dir))
  r.rc = tonumber(r.stdout:match("rc=(%d+)\n$"))
  return r
end

-- ThreadSanitizer runs a signal handler only when the thread next calls
-- into instrumented code, which a Lua loop in the (uninstrumented) liblua
-- never does: under it, a signal cannot reach a loop that never waits.
local tsan = (function()
  for line in io.lines("/proc/self/maps") do
    if line:find("libtsan") then return true end
  end
  return false
end)()

local function needs_signals_in_loops()
  lu.skipIf(tsan, "ThreadSanitizer holds signals back from code that never calls into it")
end

-- The script's ready file n (in the script).
local READY = [[local function ready(n) assert(io.open(arg[n], "w")):close() end
]]

------------------------------------------- 7: code that never waits

TestStopSpinning = support.suite({}, 30)

function TestStopSpinning:test_sigint_cancels_a_main_task_that_never_waits()
  needs_signals_in_loops()
  local r = run(READY .. [[
    local ok, err = pcall(function() ready(1) while true do end end)
    print("cleanup", async.is_cancelled(err), tostring(err))
    async.sleep(0)                                   -- cleanup may wait
    error(err, 0)
  ]], {{ready = 1}, {signal = "INT"}})
  lu.assertEquals(r.rc, 130, r.stderr)
  lu.assertStrContains(r.stdout, "cleanup\ttrue\tCancelled: interrupted (SIGINT)")
end

function TestStopSpinning:test_sigint_stops_an_uncaught_loop()
  needs_signals_in_loops()
  local r = run(READY .. "ready(1) while true do end", {{ready = 1}, {signal = "INT"}})
  lu.assertEquals(r.rc, 130, r.stderr)
  lu.assertStrContains(r.stderr, "interrupted (SIGINT)")
end

function TestStopSpinning:test_second_sigint_exits_when_the_loop_catches_the_first()
  needs_signals_in_loops()
  local r = run(READY .. [[
    local n = 0
    while true do
      n = n + 1
      pcall(function() ready(n) while true do end end)
      print("caught " .. n) io.stdout:flush()
    end
  ]], {{ready = 1}, {signal = "INT"}, {ready = 2}, {signal = "INT"}})
  lu.assertEquals(r.rc, 130, r.stderr)
  lu.assertStrContains(r.stdout, "caught 1")
  lu.assertStrContains(r.stderr, "interrupted")
end

function TestStopSpinning:test_a_background_task_that_never_waits_is_interrupted_and_main_cancelled()
  needs_signals_in_loops()
  local r = run(READY .. [[
    local spinner = async.spawn(function() ready(1) while true do end end)
    local ok, err = pcall(async.sleep, 30)
    print("main cleanup", async.is_cancelled(err))
    print("spinner", spinner:done(), async.is_cancelled(spinner:error()))
    error(err, 0)
  ]], {{ready = 1}, {signal = "INT"}})
  lu.assertEquals(r.rc, 130, r.stderr)
  lu.assertStrContains(r.stdout, "main cleanup\ttrue")
  lu.assertStrContains(r.stdout, "spinner\ttrue\ttrue")
end

function TestStopSpinning:test_a_loop_inside_a_coroutine_is_interrupted()
  needs_signals_in_loops()
  local r = run(READY .. [[
    local gen = coroutine.wrap(function() ready(1) while true do end end)
    local ok, err = pcall(gen)
    print("caught", ok, async.is_cancelled(err))
  ]], {{ready = 1}, {signal = "INT"}})
  lu.assertEquals(r.rc, 0, r.stderr)
  lu.assertStrContains(r.stdout, "caught\tfalse\ttrue")
end

-- The REPL, through a pseudo-terminal (tests/pty_drive.py).
local function drive(steps, args)
  local path = os.tmpname()
  support.write_file(path, table.concat(steps, "\n") .. "\n")
  local r = support.sh("LASYNC_HISTORY= PTY_TIMEOUT=15 " .. PY .. " tests/pty_drive.py "
                       .. q(path) .. " -- " .. BIN .. " " .. (args or "-i"))
  os.remove(path)
  return r
end

function TestStopSpinning:test_repl_ctrl_c_interrupts_a_spinning_line_and_keeps_background_tasks()
  needs_signals_in_loops()
  local r = drive({
    "expect > $",
    [[send n = 0; bg = async.spawn(function() while true do n = n + 1; async.sleep(0.001) end end)\r]],
    "expect > $",
    [[send print("sp" .. "in") while true do end\r]],
    [[expect \nspin]],
    "signal INT",
    [[expect interrupted \(Ctrl-C\)]],
    "expect > $",
    [[send local m = n; async.sleep(0.05); print(bg:done(), n > m and "ticking" or "stuck")\r]],
    [[expect false\s+ticking]],
    "expect > $",
    [[send \x04]],
    "expect cancelled 1 background task",
    "expect-exit 0"})
  lu.assertEquals(r.status, 0, r.stdout .. r.stderr)
end

-- The REPL's second Ctrl-C leaves a line running in the background, but
-- that needs the loop: a line that caught the first and spins on never
-- gives it back, so the second ends the process.
function TestStopSpinning:test_repl_second_ctrl_c_exits_when_the_line_catches_the_first()
  needs_signals_in_loops()
  local r = drive({"expect > $",
                   [[send while true do pcall(function() print("sp" .. "in") while true do end end) end\r]],
                   [[expect \nspin]], "signal INT", [[expect \nspin]], "signal INT", "expect-exit 130"})
  lu.assertEquals(r.status, 0, r.stdout .. r.stderr)
end

function TestStopSpinning:test_repl_sigterm_ends_a_spinning_line()
  needs_signals_in_loops()
  local r = drive({"expect > $", [[send print("sp" .. "in") while true do end\r]],
                   [[expect \nspin]], "signal TERM", "expect-exit 143"})
  lu.assertEquals(r.status, 0, r.stdout .. r.stderr)
end

------------------------------------------------ 8: exit must not hang

TestStopShutdown = support.suite({}, 30)

local CATCHER = READY .. [[
  async.spawn(function()
    while true do
      local ok = pcall(async.sleep, 1000)
      ready(1)                                        -- cancelled, and caught it
    end
  end):set_name("catcher")
  async.sleep(0)
  print("main ends")
]]

function TestStopShutdown:test_a_task_that_catches_its_cancellation_is_named_at_the_deadline()
  local r = run(CATCHER, {}, "--shutdown-timeout 0.2")
  lu.assertEquals(r.rc, 1, r.stderr)
  lu.assertStrContains(r.stdout, "main ends")
  lu.assertStrContains(r.stderr, "the shutdown did not finish within 0.2 s")
  lu.assertStrContains(r.stderr, "catcher")
end

function TestStopShutdown:test_a_task_that_awaits_forever_after_cancellation()
  -- Each cancellation raised out of await (an instrumented C function)
  -- leaves a frame on ThreadSanitizer's shadow stack; the loop below
  -- catches tens of thousands before the deadline and overflows it (TSan
  -- aborts: "CHECK failed: sanitizer_stackdepot.cpp:83").
  lu.skipIf(tsan, "each caught error leaves a frame on ThreadSanitizer's shadow stack")
  local r = run([[
    async.spawn(function()
      while true do pcall(function() async.future():await() end) end
    end):set_name("forever")
    async.sleep(0)
  ]], {}, "--shutdown-timeout 0.2")
  lu.assertEquals(r.rc, 1, r.stderr)
  lu.assertStrContains(r.stderr, "forever")
end

-- Cleanup code that never waits: at the deadline it is interrupted where
-- it runs; if it catches that too, the process ends a second later.
function TestStopShutdown:test_a_cleanup_that_spins_is_interrupted_at_the_deadline()
  local r = run([[
    async.spawn(function() pcall(async.sleep, 1000) while true do end end)
    async.sleep(0)
  ]], {}, "--shutdown-timeout 0.2")
  lu.assertEquals(r.rc, 1, r.stderr)
  lu.assertStrContains(r.stderr, "code that did not wait was interrupted")
end

function TestStopShutdown:test_a_cleanup_that_spins_and_catches_everything_meets_the_deadline()
  local r = run([[
    async.spawn(function()
      pcall(async.sleep, 1000)
      while true do pcall(function() while true do end end) end
    end)
    async.sleep(0)
  ]], {}, "--shutdown-timeout 0.2")
  lu.assertEquals(r.rc, 1, r.stderr)
  lu.assertStrContains(r.stderr, "a task runs code that does not stop")
end

function TestStopShutdown:test_environment_variable_and_bad_values()
  local r = support.sh("LASYNC_SHUTDOWN_TIMEOUT=0.2 " .. GUARDED .. " -e " .. q([[
    async.spawn(function() while true do pcall(async.sleep, 1000) end end):set_name("envy")
    async.sleep(0)
  ]]))
  lu.assertEquals(r.status, 1, r.stderr)
  lu.assertStrContains(r.stderr, "envy")
  r = support.sh(GUARDED .. " --shutdown-timeout soon -e 'print(1)'")
  lu.assertEquals(r.status, 1)
  lu.assertStrContains(r.stderr, "'soon'")
  r = support.sh("LASYNC_SHUTDOWN_TIMEOUT=-1 " .. GUARDED .. " -e 'print(1)'")
  lu.assertEquals(r.status, 1)
  lu.assertStrContains(r.stderr, "'-1'")
  r = support.sh(GUARDED .. " --shutdown-timeout inf -e 'print(1)'")
  lu.assertEquals(r.status, 0, r.stderr)
end

function TestStopShutdown:test_sigterm_ends_a_shutdown_that_hangs()
  local r = run(CATCHER, {{ready = 1}, {signal = "TERM"}}, "--shutdown-timeout 60")
  lu.assertEquals(r.rc, 143, r.stderr)
  lu.assertStrContains(r.stderr, "SIGTERM")
end

function TestStopShutdown:test_sighup_ends_a_shutdown_that_hangs()
  local r = run(CATCHER, {{ready = 1}, {signal = "HUP"}}, "--shutdown-timeout 60")
  lu.assertEquals(r.rc, 129, r.stderr)
end

function TestStopShutdown:test_sigterm_ends_a_shutdown_even_when_the_script_handles_sigterm()
  local r = run(READY .. [[
    async.signal.on("SIGTERM", function() print("handled") end)
    async.spawn(function() while true do pcall(async.sleep, 1000) ready(1) end end)
    async.sleep(0)
  ]], {{ready = 1}, {signal = "TERM"}}, "--shutdown-timeout 60")
  lu.assertEquals(r.rc, 143, r.stderr)
end

function TestStopShutdown:test_a_spinning_thread_does_not_keep_the_program_alive()
  local r = run(READY .. [[
    local t = async.thread.spawn(function(ch, path)
      assert(io.open(path, "w")):close()
      while true do end
    end, arg[1])
    while not io.open(arg[1]) do async.sleep(0.001) end
    print("main ends")
  ]], {}, "--shutdown-timeout 60")
  lu.assertEquals(r.rc, 0, r.stderr)
  lu.assertStrContains(r.stdout, "main ends")
end

function TestStopShutdown:test_cancel_interrupts_a_spinning_thread()
  local r = run([[
    local t = async.thread.spawn(function(ch) ch:send("up") while true do end end)
    assert(t:recv() == "up")
    t:cancel()
    local ok, err = pcall(t.join, t)
    print("joined", ok, async.is_cancelled(err))
  ]])
  lu.assertEquals(r.rc, 0, r.stderr)
  lu.assertStrContains(r.stdout, "joined\tfalse\ttrue")
end

function TestStopShutdown:test_a_thread_that_swallows_cancellation_meets_the_deadline()
  local r = run([[
    local t = async.thread.spawn(function(ch)
      ch:send("up")
      while true do pcall(function() while true do end end) end
    end)
    assert(t:recv() == "up")
    print("main ends")
  ]], {}, "--shutdown-timeout 0.3")
  lu.assertEquals(r.rc, 1, r.stderr)
  lu.assertStrContains(r.stderr, "a thread (async.thread.spawn")
end

-- The parent joins a thread that ignores cancellation: SIGINT must still
-- end the process (it used to do nothing, the loop being blocked).
function TestStopShutdown:test_sigint_ends_the_wait_for_a_thread_that_will_not_end()
  local r = run([[
    local t = async.thread.spawn(function(ch, path)
      ch:send("up")
      while true do
        pcall(function() while true do end end)
        assert(io.open(path, "w")):close()      -- the parent's cancel was caught
      end
    end, arg[1])
    assert(t:recv() == "up")
  ]], {{ready = 1}, {signal = "INT"}}, "--shutdown-timeout 60")
  lu.assertEquals(r.rc, 130, r.stderr)
  lu.assertStrContains(r.stderr, "interrupted")
end

function TestStopShutdown:test_repl_ctrl_d_with_a_task_that_will_not_end()
  local r = drive({"expect > $",
                   [[send async.spawn(function() while true do pcall(async.sleep, 1000) end end):set_name("stubborn")\r]],
                   "expect > $", [[send \x04]],
                   "expect the shutdown did not finish.*stubborn", "expect-exit 1"},
                  "--shutdown-timeout 0.3 -i")
  lu.assertEquals(r.status, 0, r.stdout .. r.stderr)
end

function TestStopShutdown:test_repl_sighup_after_ctrl_d_ends_the_shutdown()
  local path = os.tmpname()
  local r = drive({"expect > $",
                   ([[send async.spawn(function() while true do pcall(async.sleep, 1000) ]]
                    .. [[io.open(%q, "w"):write("x"):close() print("ca" .. "ught") end end)\r]]):format(path),
                   "expect > $", [[send \x04]], [[expect \ncaught]], "signal HUP", "expect-exit 129"},
                  "--shutdown-timeout 60 -i")
  os.remove(path)
  lu.assertEquals(r.status, 0, r.stdout .. r.stderr)
end

--------------------------------------------- 9: os.exit in a worker

TestStopExit = support.suite({}, 30)

function TestStopExit:test_os_exit_in_a_job_raises_to_the_caller()
  local r = run([[
    local ok, err = pcall(async.to_thread, function() os.exit(3) end)
    print("to_thread", ok, err)
    local ex = async.executor{workers = 1}
    ok, err = pcall(function() return ex:submit(function() os.exit(true, true) end):await() end)
    print("executor", ok, err)
    ex:close()
    ok, err = pcall(function() return async.thread.spawn(function() os.exit(4) end):join() end)
    print("thread", ok, err)
    print("still here")
  ]])
  lu.assertEquals(r.rc, 0, r.stderr)
  lu.assertStrMatches(r.stdout, ".*to_thread\tfalse\t[^\n]*os.exit is not allowed in a job.*")
  lu.assertStrMatches(r.stdout, ".*executor\tfalse\t[^\n]*os.exit is not allowed in a job.*")
  lu.assertStrMatches(r.stdout, ".*thread\tfalse\t[^\n]*os.exit is not allowed in a thread.*")
  lu.assertStrContains(r.stdout, "still here")
end

function TestStopExit:test_os_exit_on_the_main_thread_still_exits()
  local r = run("os.exit(7)")
  lu.assertEquals(r.rc, 7)
end

support.run(...)
