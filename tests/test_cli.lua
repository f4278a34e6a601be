-- tests/test_cli.lua: the lasync command, run as a subprocess: options,
-- the arg table, exit statuses and messages, shutdown of background tasks,
-- reports of failures nobody saw, deadlock detection, SIGINT.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"

local q = support.shell_quote
local BIN = q(support.LASYNC)
local run = support.lasync_run

-- A fresh temporary path (os.tmpname makes the file; remove it).
local function tmppath(suffix)
  local p = os.tmpname()
  os.remove(p)
  return p .. (suffix or "")
end

TestCliOptions = support.suite {}

function TestCliOptions:test_version()
  local r = support.sh(BIN .. " -v")
  lu.assertEquals(r.status, 0)
  lu.assertStrMatches(r.stdout, "lasync %d+%.%d+%.%d+.*\n")
  lu.assertStrContains(r.stdout, "Lua 5.4")
end

function TestCliOptions:test_help()
  local r = support.sh(BIN .. " -h")
  lu.assertEquals(r.status, 0)
  lu.assertStrContains(r.stdout, "usage:")
  lu.assertStrContains(r.stdout, "-e")
end

function TestCliOptions:test_unknown_option()
  local r = support.sh(BIN .. " -Z")
  lu.assertEquals(r.status, 1)
  lu.assertStrContains(r.stderr, "-Z")
  lu.assertStrContains(r.stderr, "usage:")
end

function TestCliOptions:test_e_runs_code()
  local r = support.sh(BIN .. " -e " .. q("print(1+1)"))
  lu.assertEquals(r.status, 0, r.stderr)
  lu.assertEquals(r.stdout, "2\n")
end

function TestCliOptions:test_e_code_may_wait()
  local r = support.sh(BIN .. " -e " .. q([[
    local t = async.spawn(function() async.sleep(0.001) return "waited" end)
    print(t:await())
  ]]))
  lu.assertEquals(r.status, 0, r.stderr)
  lu.assertEquals(r.stdout, "waited\n")
end

function TestCliOptions:test_e_needs_an_argument()
  local r = support.sh(BIN .. " -e")
  lu.assertEquals(r.status, 1)
  lu.assertStrContains(r.stderr, "-e")
end

-- The host's state is made with its own allocator, so lasync gives it
-- luaL_newstate's warning behaviour itself: off until warn("@on").
function TestCliOptions:test_warnings_off_until_turned_on()
  local r = support.sh(BIN .. " -e " .. q([[
    warn("hidden")
    warn("@on")
    warn("shown ", "in ", "pieces")
    warn("@off")
    warn("hidden again")
  ]]))
  lu.assertEquals(r.status, 0, r.stderr)
  lu.assertEquals(r.stderr, "Lua warning: shown in pieces\n")
end

function TestCliOptions:test_stdin_script()
  local r = support.sh("echo 'print(\"from stdin\", ...)' | " .. BIN .. " - x y")
  lu.assertEquals(r.status, 0, r.stderr)
  lu.assertEquals(r.stdout, "from stdin\tx\ty\n")
end

function TestCliOptions:test_double_dash_then_script()
  local r = run("print(...)", {})
  lu.assertEquals(r.status, 0)
  local path = tmppath("-dd.lua")
  support.write_file(path, "print('dd', ...)")
  r = support.sh(BIN .. " -- " .. q(path) .. " a")
  os.remove(path)
  lu.assertEquals(r.status, 0, r.stderr)
  lu.assertEquals(r.stdout, "dd\ta\n")
end

------------------------------------------------------------ scripts

TestCliScripts = support.suite {}

function TestCliScripts:test_arg_table_and_varargs()
  local r = run([[
    print("0=" .. arg[0])
    print("n=" .. #arg, arg[1], arg[2], arg[3])
    print("dots", select("#", ...), ...)
    print("neg", arg[-1] ~= nil)
  ]], {"one", "two words", ""})
  lu.assertEquals(r.status, 0, r.stderr)
  local lines = {}
  for l in r.stdout:gmatch("[^\n]*\n") do lines[#lines + 1] = l end
  lu.assertEquals(lines[1], "0=" .. r.script .. "\n")
  lu.assertEquals(lines[2], "n=3\tone\ttwo words\t\n")
  lu.assertEquals(lines[3], "dots\t3\tone\ttwo words\t\n")
  lu.assertEquals(lines[4], "neg\ttrue\n")
end

function TestCliScripts:test_script_waits_at_top_level()
  local r = run([[
    local log = {}
    local t = async.spawn(function() async.sleep(0.002) log[#log + 1] = "child" return 7 end)
    async.sleep(0.001)
    log[#log + 1] = "main"
    local v = t:await()
    log[#log + 1] = v
    print(table.concat(log, ","))
  ]])
  lu.assertEquals(r.status, 0, r.stderr)
  lu.assertEquals(r.stdout, "main,child,7\n")
end

function TestCliScripts:test_async_is_a_global_and_requirable()
  local r = run([[print(async == require("async"), type(async.spawn))]])
  lu.assertEquals(r.stdout, "true\tfunction\n")
end

function TestCliScripts:test_uncaught_error_exits_1_with_traceback()
  local r = run([[
local function helper_that_fails()
  error("something broke")
end
helper_that_fails()
]])
  lu.assertEquals(r.status, 1)
  lu.assertStrContains(r.stderr, "something broke")
  lu.assertStrContains(r.stderr, r.script .. ":2:")     -- file and line
  lu.assertStrContains(r.stderr, "stack traceback")
  lu.assertStrContains(r.stderr, "helper_that_fails")
  lu.assertEquals(r.stdout, "")
end

function TestCliScripts:test_uncaught_error_after_a_wait()
  local r = run([[
async.sleep(0.001)
error("late failure")
]])
  lu.assertEquals(r.status, 1)
  lu.assertStrContains(r.stderr, r.script .. ":2: late failure")
end

function TestCliScripts:test_uncaught_table_error()
  local r = run([[error(setmetatable({}, {__tostring = function() return "custom error object" end}))]])
  lu.assertEquals(r.status, 1)
  lu.assertStrContains(r.stderr, "custom error object")
end

function TestCliScripts:test_error_reraised_from_child_shows_both()
  local r = run([[
local t = async.spawn(function()
  local function child_function() error("child failed") end
  child_function()
end)
t:set_name("the-child")
t:await()
]])
  lu.assertEquals(r.status, 1)
  lu.assertStrContains(r.stderr, "child failed")
  lu.assertStrContains(r.stderr, "re-raised from the-child")
  lu.assertStrContains(r.stderr, "child_function")
end

function TestCliScripts:test_main_cancelled_by_itself_exits_130()
  local r = run([[
    async.current():cancel("cancelled on purpose")
    async.sleep(0)
  ]])
  lu.assertEquals(r.status, 130)
  lu.assertStrContains(r.stderr, "Cancelled: cancelled on purpose")
  lu.assertNotStrContains(r.stderr, "stack traceback")   -- only the error
end

function TestCliScripts:test_main_timeout_uncaught_exits_1()
  local r = run([[async.timeout(0.001, async.sleep, 10)]])
  lu.assertEquals(r.status, 1)
  lu.assertStrContains(r.stderr, "Timeout: timed out after 0.001 s")
end

function TestCliScripts:test_syntax_error()
  local r = run("local x = = 1\n")
  lu.assertEquals(r.status, 1)
  lu.assertStrContains(r.stderr, r.script .. ":1:")
  lu.assertStrContains(r.stderr, "unexpected symbol")
  lu.assertEquals(r.stdout, "")
end

function TestCliScripts:test_missing_file()
  local path = tmppath("-does-not-exist.lua")
  local r = support.sh(BIN .. " " .. q(path))
  lu.assertEquals(r.status, 1)
  lu.assertStrContains(r.stderr, "cannot open")
  lu.assertStrContains(r.stderr, path)
end

function TestCliScripts:test_exit_status_from_os_exit()
  local r = run([[os.exit(3)]])
  lu.assertEquals(r.status, 3)
end

------------------------------------------------------------ shutdown

TestCliShutdown = support.suite {}

function TestCliShutdown:test_pending_background_task_cancelled_cleanup_runs()
  local r = run([[
    async.spawn(function()
      local ok, err = pcall(async.sleep, 100)
      async.sleep(0.001)                -- cleanup may wait
      print("pcall cleanup", async.is_cancelled(err))
      error(err, 0)
    end)
    async.spawn(function()
      local _ <close> = setmetatable({}, {__close = function(_, e)
        async.sleep(0.001)
        print("close cleanup", async.is_cancelled(e))
      end})
      async.sleep(100)
    end)
    async.sleep(0.001)
    print("main returns")
  ]])
  lu.assertEquals(r.status, 0, r.stderr)
  lu.assertStrContains(r.stdout, "main returns\n")
  lu.assertStrContains(r.stdout, "pcall cleanup\ttrue\n")
  lu.assertStrContains(r.stdout, "close cleanup\ttrue\n")
  lu.assertTrue(r.stdout:find("main returns", 1, true) < r.stdout:find("cleanup", 1, true))
  lu.assertNotStrContains(r.stderr, "nobody awaited")   -- cancelled is not failed
end

function TestCliShutdown:test_failed_task_nobody_awaited_is_reported()
  local r = run([[
local t = async.spawn(function()
  local function unobserved_failure() error("nobody saw this") end
  unobserved_failure()
end)
async.sleep(0.001)
print("main done")
]])
  lu.assertStrContains(r.stdout, "main done")
  lu.assertStrContains(r.stderr, "nobody awaited it")
  lu.assertStrContains(r.stderr, "nobody saw this")
  lu.assertStrContains(r.stderr, "stack traceback")
  lu.assertStrContains(r.stderr, "unobserved_failure")
  lu.assertStrContains(r.stderr, r.script .. ":2:")
end

function TestCliShutdown:test_cleanup_failure_at_shutdown_is_reported()
  local r = run([[
    async.spawn(function()
      pcall(async.sleep, 100)
      error("cleanup failed at shutdown")
    end)
    async.sleep(0.001)
  ]])
  lu.assertEquals(r.status, 0, r.stderr)
  lu.assertStrContains(r.stderr, "nobody awaited it")
  lu.assertStrContains(r.stderr, "cleanup failed at shutdown")
end

function TestCliShutdown:test_done_callback_observes_a_failure()
  local r = run([[
    local t = async.spawn(function() error("handled by a callback") end)
    t:add_done_callback(function(x) print("callback saw", x:state()) end)
    async.sleep(0.001)
  ]])
  lu.assertEquals(r.status, 0, r.stderr)
  lu.assertStrContains(r.stdout, "callback saw\tfailed")
  lu.assertNotStrContains(r.stderr, "nobody awaited")
end

function TestCliShutdown:test_os_exit_skips_shutdown()
  local r = run([[
    async.spawn(function()
      local ok = pcall(async.sleep, 100)
      print("cleanup ran")
    end)
    async.sleep(0.001)
    io.stdout:flush()
    os.exit(4)
  ]])
  lu.assertEquals(r.status, 4)
  lu.assertNotStrContains(r.stdout, "cleanup ran")
end

function TestCliShutdown:test_callback_failure_report_format()
  local r = run([[
    async.call_soon(function() error("in a callback") end)
    async.sleep(0.001)
  ]])
  lu.assertEquals(r.status, 0, r.stderr)
  lu.assertStrContains(r.stderr, "lasync: callback failed:")
  lu.assertStrContains(r.stderr, "in a callback")
  lu.assertStrContains(r.stderr, "stack traceback")
end

function TestCliShutdown:test_failed_task_reported_when_collected()
  local r = run([[
async.spawn(function() error("collected failure") end)
async.sleep(0.001)
collectgarbage(); collectgarbage()
io.stderr:write("MARK after gc\n")
async.sleep(0.001)
]])
  local report = r.stderr:find("nobody awaited it", 1, true)
  local mark = r.stderr:find("MARK after gc", 1, true)
  lu.assertNotNil(report, r.stderr)
  lu.assertNotNil(mark, r.stderr)
  lu.assertTrue(report < mark, "not reported when collected:\n" .. r.stderr)
  lu.assertStrContains(r.stderr, "collected failure")
  local _, count = r.stderr:gsub("nobody awaited it", "")
  lu.assertEquals(count, 1)             -- once, not again at exit
end

function TestCliShutdown:test_observed_failures_are_not_reported()
  local r = run([[
    local a = async.spawn(function() error("awaited failure") end)
    print(pcall(a.await, a))
    local b = async.spawn(function() error("checked failure", 0) end)
    async.sleep(0.001)
    print(b:error())
    local c = async.spawn(function() async.sleep(0) error("gathered failure", 0) end)
    print(pcall(async.gather, c))
  ]])
  lu.assertEquals(r.status, 0, r.stderr)
  lu.assertNotStrContains(r.stderr, "nobody awaited")
  lu.assertStrContains(r.stdout, "checked failure")
  lu.assertStrContains(r.stdout, "gathered failure")
end

function TestCliShutdown:test_deadlock_exits_1_without_hanging()
  local r = run([[
    local f = async.future()
    print("waiting")
    io.stdout:flush()
    f:await()
    print("never")
  ]])
  lu.assertEquals(r.status, 1, r.stderr)
  lu.assertStrContains(r.stderr, "deadlock")
  lu.assertStrContains(r.stderr, r.script .. ":4:")   -- where main waits
  lu.assertEquals(r.stdout, "waiting\n")
end

function TestCliShutdown:test_deadlock_with_a_waiting_child()
  -- main awaits a child that awaits a future nobody resolves
  local r = run([[
    local f = async.future()
    local t = async.spawn(function() return f:await() end)
    t:await()
  ]])
  lu.assertEquals(r.status, 1, r.stderr)
  lu.assertStrContains(r.stderr, "deadlock")
end

-- Like Go's "all goroutines are asleep": every blocked task, what it waits
-- on and its stack, the same ones grouped.
function TestCliShutdown:test_deadlock_lists_every_blocked_task()
  local r = run([[
    local q = async.queue()
    for i = 1, 3 do async.spawn(function() return q:get() end):set_name("consumer-" .. i) end
    local ev = async.event()
    local w = async.spawn(function() ev:wait() end)
    w:set_name("waiter")
    w:await()           -- line 6
  ]])
  lu.assertEquals(r.status, 1, r.stderr)
  lu.assertStrContains(r.stderr, "deadlock")
  lu.assertStrContains(r.stderr, "5 tasks are blocked")
  lu.assertStrContains(r.stderr, "task 'task-1': waiting on task-5 at " .. r.script .. ":6")
  lu.assertStrContains(r.stderr, "3 tasks 'consumer-1' .. 'consumer-3': waiting on queue at " ..
                       r.script .. ":2")
  lu.assertStrContains(r.stderr, "task 'waiter': waiting on event at " .. r.script .. ":4")
  lu.assertStrContains(r.stderr, "in method 'get'")       -- the stacks
  lu.assertStrContains(r.stderr, "in method 'wait'")
end

function TestCliShutdown:test_no_deadlock_while_a_timer_is_pending()
  local r = run([[
    local f = async.future()
    async.call_later(0.002, function() f:resolve("resolved later") end)
    print(f:await())
  ]])
  lu.assertEquals(r.status, 0, r.stderr)
  lu.assertEquals(r.stdout, "resolved later\n")
end

-- Runs script (its source) in the background with a path to create when
-- it is ready, sends SIGINT once it is, and returns sh's result; stdout
-- ends with "rc=<exit status>".
local function run_interrupted(source)
  local dir = tmppath("-sigint")
  assert(os.execute("mkdir " .. q(dir)))
  local script, ready = dir .. "/s.lua", dir .. "/ready"
  support.write_file(script, source)
  local cmd = table.concat({
    BIN .. " " .. q(script) .. " " .. q(ready) .. " </dev/null & pid=$!",
    "i=0; while [ ! -e " .. q(ready) .. " ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done",
    "kill -INT $pid; wait $pid; echo rc=$?",
  }, "\n")
  local r = support.sh(cmd)
  os.remove(script); os.remove(ready); os.remove(dir)
  return r
end

local SIGINT_MAIN = [[
  local ok, err = pcall(function()
    local f = assert(io.open(arg[1], "w")) f:close()   -- ready
    async.sleep(30)
  end)
  async.sleep(0.001)                    -- cleanup may wait
  print("cleanup", async.is_cancelled(err), tostring(err))
  io.stdout:flush()
  error(err, 0)
]]

function TestCliShutdown:test_main_cancelled_by_sigint()
  local r = run_interrupted(SIGINT_MAIN)
  lu.assertStrContains(r.stdout, "cleanup\ttrue")
  lu.assertStrContains(r.stdout, "rc=130")
end

function TestCliShutdown:test_sigint_cancel_message_names_sigint()
  -- main.c cancels the main task with the message "interrupted (SIGINT)"
  local r = run_interrupted(SIGINT_MAIN)
  lu.assertStrContains(r.stdout, "cleanup\ttrue")
  lu.assertStrContains(r.stdout, "SIGINT")
end

function TestCliShutdown:test_second_sigint_exits_at_once()
  -- the first SIGINT cancels main, whose cleanup then waits long; a second
  -- SIGINT exits at once with 130, without finishing the cleanup
  local dir = tmppath("-sigint3")
  assert(os.execute("mkdir " .. q(dir)))
  local script, ready, ready2 = dir .. "/s.lua", dir .. "/ready", dir .. "/ready2"
  support.write_file(script, [[
    local ok, err = pcall(function()
      local f = assert(io.open(arg[1], "w")) f:close()
      async.sleep(30)
    end)
    print("first interrupt") io.stdout:flush()
    local f = assert(io.open(arg[2], "w")) f:close()
    async.sleep(30)                     -- a long cleanup
    print("cleanup finished")
  ]])
  local wait_for = function(path)
    return "i=0; while [ ! -e " .. q(path) .. " ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done"
  end
  local r = support.sh(table.concat({
    BIN .. " " .. q(script) .. " " .. q(ready) .. " " .. q(ready2) .. " </dev/null & pid=$!",
    wait_for(ready), "kill -INT $pid", wait_for(ready2), "kill -INT $pid",
    "wait $pid; echo rc=$?",
  }, "\n"))
  os.remove(script); os.remove(ready); os.remove(ready2); os.remove(dir)
  lu.assertStrContains(r.stdout, "first interrupt")
  lu.assertNotStrContains(r.stdout, "cleanup finished")
  lu.assertStrContains(r.stdout, "rc=130")
  lu.assertStrContains(r.stderr, "interrupted")
end

function TestCliShutdown:test_sigint_caught_by_main_program_goes_on()
  local r = run_interrupted([[
    local ok, err = pcall(function()
      local f = assert(io.open(arg[1], "w")) f:close()
      async.sleep(30)
    end)
    print("recovered", async.is_cancelled(err))
    async.sleep(0.001)
  ]])
  lu.assertStrContains(r.stdout, "recovered\ttrue")
  lu.assertStrContains(r.stdout, "rc=0")
end

function TestCliShutdown:test_sigint_during_shutdown_exits_at_once()
  -- main has ended; a background task's cleanup waits long; SIGINT then
  -- exits at once with 130
  local r = run_interrupted([[
    async.spawn(function()
      pcall(async.sleep, 100)           -- cancelled: the program is ending
      local f = assert(io.open(arg[1], "w")) f:close()
      async.sleep(30)
      print("cleanup finished")
    end)
    async.sleep(0.001)
  ]])
  lu.assertNotStrContains(r.stdout, "cleanup finished")
  lu.assertStrContains(r.stdout, "rc=130")
  lu.assertStrContains(r.stderr, "interrupted")
end

function TestCliShutdown:test_sigint_cancels_background_tasks_too()
  local r = run_interrupted([[
    async.spawn(function()
      local ok, err = pcall(async.sleep, 30)
      print("background cleanup", async.is_cancelled(err))
      io.stdout:flush()
    end)
    async.sleep(0)
    local f = assert(io.open(arg[1], "w")) f:close()
    async.sleep(30)
  ]])
  lu.assertStrContains(r.stdout, "background cleanup\ttrue")
  lu.assertStrContains(r.stdout, "rc=130")
end

function TestCliShutdown:test_deadlock_message_says_deadlock_in_cancel()
  -- the main task is cancelled with a message naming the deadlock, which
  -- its cleanup sees
  local r = run([[
    local f = async.future()
    local ok, err = pcall(f.await, f)
    print("cleanup saw", tostring(err))
    error(err, 0)
  ]])
  lu.assertEquals(r.status, 1, r.stderr)
  lu.assertStrContains(r.stdout, "cleanup saw")
  lu.assertStrContains(r.stdout, "deadlock")
end

support.run(...)
