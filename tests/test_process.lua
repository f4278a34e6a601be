-- tests/test_process.lua: async.process with real children: run() and its
-- capture, input, exit codes, deadline and cancellation (the child is
-- killed and reaped: no zombie), spawn() with pipes, inherited and ignored
-- streams, pipelines, environment, cwd, kill, wait and its cancellation.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"
local io_ = require "iosupport"
local process = async.process

local function started(fn, ...)
  local t = async.spawn(fn, ...)
  async.sleep(0)
  return t
end

-- "Z" when pid is our zombie, nil when it is gone, else its state letter.
local function proc_state(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s:match("^%d+ %b() (%a)")
end

-- How many zombie children this process has.
local function zombies()
  local out = os.tmpname()
  os.execute("ps -o stat= --ppid " .. io_.pid .. " > " .. out .. " 2>/dev/null")
  local n = 0
  for line in io.lines(out) do if line:match("^Z") then n = n + 1 end end
  os.remove(out)
  return n
end

TestRun = support.suite({}, 20)

function TestRun:test_captures_output_and_exit_code()
  local r = process.run("sh", "-c", "echo out; echo err >&2; exit 3")
  lu.assertEquals(r.code, 3)
  lu.assertNil(r.signal)
  lu.assertFalse(r.ok)
  lu.assertEquals(r.stdout, "out\n")
  lu.assertEquals(r.stderr, "err\n")
  r = process.run{"true"}
  lu.assertTrue(r.ok)
  lu.assertEquals(r.stdout, "")
end

function TestRun:test_input_and_large_output()
  local r = process.run{"tr", "a-z", "A-Z", input = "hello\n"}
  lu.assertEquals(r.stdout, "HELLO\n")
  local big = ("0123456789abcdef"):rep(65536)          -- 1 MiB through a filter
  r = process.run{"cat", input = big}
  lu.assertTrue(r.stdout == big)
  r = process.run("head", "-c", "10485760", "/dev/zero")
  lu.assertEquals(#r.stdout, 10485760)
end

function TestRun:test_check_raises_with_the_details()
  local ok, err = pcall(process.run, {"sh", "-c", "echo why >&2; exit 7", check = true})
  lu.assertFalse(ok)
  lu.assertEquals(getmetatable(err), async.IOError)
  lu.assertEquals(err.code, "EXIT")
  lu.assertEquals(err.status, 7)
  lu.assertEquals(err.stderr, "why\n")
  lu.assertEquals(tostring(err), "run sh: exited with status 7 (EXIT)")
end

function TestRun:test_command_not_found()
  local ok, err = pcall(process.run, "/no/such/program")
  lu.assertFalse(ok)
  lu.assertEquals(err.code, "ENOENT")
  lu.assertEquals(err.op, "spawn")
  lu.assertEquals(err.path, "/no/such/program")
end

-- Past the deadline the child is killed and reaped before run() raises.
function TestRun:test_timeout_kills_and_reaps_the_child()
  local dir = io_.tmpdir()
  local ok, err = pcall(process.run, {"sh", "-c", "echo $$ > " .. dir .. "/pid; exec sleep 30",
                                      timeout = 0.2})
  lu.assertFalse(ok)
  lu.assertTrue(async.is_timeout(err), tostring(err))
  local pid = tonumber(support.slurp(dir .. "/pid"))
  lu.assertNotNil(pid)
  lu.assertNil(proc_state(pid))           -- gone: not running, not a zombie
  io_.rmtree(dir)
end

function TestRun:test_cancelled_run_kills_and_reaps_the_child()
  local dir = io_.tmpdir()
  local t = async.spawn(process.run, {"sh", "-c", "echo $$ > " .. dir .. "/pid; exec sleep 30"})
  io_.eventually(function() return support.slurp(dir .. "/pid") ~= "" end, "the child started")
  local pid = tonumber(support.slurp(dir .. "/pid"))
  t:cancel()
  lu.assertTrue(async.is_cancelled(select(2, pcall(t.await, t))))
  lu.assertNil(proc_state(pid))
  lu.assertEquals(zombies(), 0)
  io_.rmtree(dir)
end

function TestRun:test_cwd_and_environment()
  local dir = io_.tmpdir()
  local r = process.run{"sh", "-c", "pwd; echo \"$LASYNC_X|$HOME\"", cwd = dir,
                        env = {LASYNC_X = "set", HOME = false}}
  lu.assertEquals(r.stdout, dir .. "\nset|\n")
  r = process.run{"/usr/bin/env", clear_env = true, env = {ONLY = "this"}}
  lu.assertEquals(r.stdout, "ONLY=this\n")
  io_.rmtree(dir)
end

function TestRun:test_bad_arguments()
  lu.assertErrorMsgContains("command string or table expected", process.run, 42)
  lu.assertErrorMsgContains("table expected", process.spawn, "ls")
  lu.assertErrorMsgContains("the command is missing", process.spawn, {})
  lu.assertErrorMsgContains("argument 2 is a table", process.spawn, {"ls", {}})
  lu.assertErrorMsgContains('stdout must be "pipe", "inherit", "ignore" or a Stream',
                            process.spawn, {"true", stdout = "nowhere"})
  lu.assertErrorMsgContains("env.X must be a string", process.spawn, {"true", env = {X = {}}})
  lu.assertErrorMsgContains("input must be a string", process.run, {"cat", input = 5})
end

TestSpawn = support.suite({}, 20)

function TestSpawn:test_pipes_both_ways()
  local p = process.spawn{"cat", stdin = "pipe", stdout = "pipe"}
  lu.assertNil(p.stderr)
  lu.assertEquals(p.stdin:kind(), "pipe")
  for i = 1, 20 do
    p.stdin:write("line ", i, "\n")
    lu.assertEquals(p.stdout:read_line(), "line " .. i)
  end
  p.stdin:close()                         -- cat sees the end of its input
  lu.assertNil(p.stdout:read())
  local code, sig = p:wait()
  lu.assertEquals(code, 0)
  lu.assertNil(sig)
  lu.assertEquals(p:status(), 0)
  p:close()
end

function TestSpawn:test_ignore_and_inherit()
  local p = process.spawn{"sh", "-c", "cat; echo done", stdin = "ignore", stdout = "pipe"}
  lu.assertEquals(p.stdout:read_all(), "done\n")   -- stdin was /dev/null
  lu.assertEquals(p:wait(), 0)
  p:close()
  local r = support.sh(support.shell_quote(support.LASYNC) .. [[ -e '
    local p = async.process.spawn{"sh", "-c", "echo inherited"}
    assert(p:wait() == 0)
    p:close()']])
  lu.assertEquals(r.stdout, "inherited\n")
end

function TestSpawn:test_pipeline_hands_a_stream_over()
  local a = process.spawn{"printf", "b\\nc\\na\\n", stdout = "pipe"}
  local b = process.spawn{"sort", stdin = a.stdout, stdout = "pipe"}
  a.stdout:close()                        -- the child has its own copy now
  lu.assertEquals(b.stdout:read_all(), "a\nb\nc\n")
  lu.assertEquals(a:wait(), 0)
  lu.assertEquals(b:wait(), 0)
  a:close()
  b:close()
end

function TestSpawn:test_kill_and_wait()
  local p = process.spawn{"sleep", "30"}
  lu.assertNil(p:status())
  lu.assertStrContains(tostring(p), "running")
  lu.assertTrue(p:kill())
  local code, sig = p:wait()
  lu.assertEquals(sig, "SIGTERM")
  lu.assertEquals(code, 0)
  lu.assertFalse(p:kill("SIGKILL"))       -- already gone
  lu.assertStrContains(tostring(p), "killed by SIGTERM")
  p:close()
  p = process.spawn{"sleep", "30"}
  p:kill(9)
  lu.assertEquals(select(2, p:wait()), "SIGKILL")
  lu.assertErrorMsgContains("unknown signal 'SIGNOPE'", p.kill, p, "SIGNOPE")
  p:close()
end

function TestSpawn:test_cancelled_wait_leaves_the_child_running()
  local p = process.spawn{"sleep", "30"}
  local t = started(p.wait, p)
  t:cancel()
  lu.assertTrue(async.is_cancelled(select(2, pcall(t.await, t))))
  lu.assertNil(p:status())
  local state = proc_state(p.pid)
  lu.assertTrue(state ~= nil and state ~= "Z", tostring(state))  -- alive
  p:kill()
  p:wait()
  p:close()
end

function TestSpawn:test_close_while_waiting()
  local p = process.spawn{"sleep", "30"}
  local t = started(p.wait, p)
  local pid = p.pid
  p:close()                               -- detached: reaped when it exits
  local ok, err = pcall(t.await, t)
  lu.assertFalse(ok)
  lu.assertEquals(err.code, "ECANCELED")
  async.signal.kill(pid, "SIGKILL")
  io_.eventually(function() return proc_state(pid) == nil end, "reaped")
end

-- Children nobody waits for are still reaped: no zombies, also after the
-- Process objects were dropped.
function TestSpawn:test_forgotten_children_are_reaped()
  for _ = 1, 10 do process.spawn{"true"} end
  collectgarbage()
  collectgarbage()
  io_.eventually(function() return zombies() == 0 end, "no zombies")
end

function TestSpawn:test_close_variable_terminates_on_error()
  local pid
  local ok = pcall(function()
    local p <close> = process.spawn{"sleep", "30"}
    pid = p.pid
    error("leaving the block")
  end)
  lu.assertFalse(ok)
  io_.eventually(function() return proc_state(pid) == nil end, "terminated and reaped")
end

function TestSpawn:test_descriptors_are_released()
  local a, b = io_.pair()
  a:close()
  b:close()
  local before = io_.fds()
  for _ = 1, 10 do
    local p = process.spawn{"cat", stdin = "pipe", stdout = "pipe", stderr = "pipe"}
    p.stdin:close()
    lu.assertNil(p.stdout:read())
    p:wait()
    p:close()
  end
  lu.assertEquals(io_.fds(), before)
end

support.run(...)
