-- Seeing inside the loop: async.tasks/dump, SIGQUIT, the watchdog, debug
-- mode, and task-local context.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"
local core = require "async.core"

------------------------------------------------------------ introspection

TestIntrospection = support.suite {}

function TestIntrospection:test_tasks_lists_what_each_waits_on()
  local f = async.future()
  local sleeper = async.spawn(function() async.sleep(30) end)
  local waiter = async.spawn(function() f:await() end)
  local parent = async.spawn(function() sleeper:await() end)
  async.sleep(0)
  local by_id = {}
  for _, info in ipairs(async.tasks()) do by_id[info.id] = info end
  lu.assertStrContains(by_id[sleeper:id()].waiting, "sleep (")
  lu.assertStrContains(by_id[sleeper:id()].where, "test_debug.lua:")
  lu.assertEquals(by_id[waiter:id()].waiting, "future")
  lu.assertEquals(by_id[parent:id()].waiting, sleeper:name())
  lu.assertEquals(by_id[sleeper:id()].parent, async.current():id())
  lu.assertEquals(by_id[async.current():id()].state, "running")
  for _, t in ipairs{sleeper, waiter, parent} do t:cancel() end
  async.settle(sleeper, waiter, parent)
end

function TestIntrospection:test_dump_shows_the_tree_and_groups_identical_tasks()
  local q = async.future()
  local text
  async.scope(function(g)
    for _ = 1, 500 do g:spawn(function() q:await() end) end
    g:spawn(function()
      async.scope(function(g2)
        for _ = 1, 2 do g2:spawn(function() async.sleep(60) end) end
      end)
    end)
    async.sleep(0)
    async.sleep(0)
    text = async.dump(false)
    g:cancel()
  end)
  lu.assertStrContains(text, "live tasks")
  -- 500 identical waiters are one line, under the test's own task
  lu.assertStrMatches(text, ".*\n[│ ]*[├└]─ 500 × task%-%d+ %.%. task%-%d+: waiting on future at tests/test_debug.lua:%d+\n.*")
  -- the nested scope's two sleepers sit one level deeper, grouped too
  lu.assertStrMatches(text, ".*\n[│ ]+[│ ]+[└├]─ 2 × task%-%d+ %.%. task%-%d+: waiting on sleep %(timed%) at tests/test_debug.lua:%d+\n.*")
end

function TestIntrospection:test_sigquit_prints_a_dump_and_the_program_goes_on()
  -- The shell sends SIGQUIT once the script is ready, and creates `go` only
  -- once the dump is on stderr: creating it right after the kill let the
  -- script see go (and cancel the sleeper) before the signal was taken.
  local dir = os.tmpname()
  os.remove(dir)
  os.execute("mkdir " .. dir)
  local script, ready, go = dir .. "/s.lua", dir .. "/ready", dir .. "/go"
  local err = dir .. "/err"
  support.write_file(script, [[
    local ready, go = ...
    local t = async.spawn(function() async.sleep(30) end)
    t:set_name("long-sleeper")
    async.sleep(0)
    io.open(ready, "w"):close()
    for _ = 1, 500 do
      local f = io.open(go)
      if f then f:close() break end
      async.sleep(0.01)
    end
    async.sleep(0)
    print("still running")
    t:cancel()
  ]])
  local q = support.shell_quote
  local r = support.sh(table.concat({
    q(support.LASYNC) .. " " .. q(script) .. " " .. q(ready) .. " " .. q(go) .. " </dev/null 2>" .. q(err) .. " & pid=$!",
    "i=0; while [ ! -e " .. q(ready) .. " ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i+1)); done",
    "kill -QUIT $pid",
    "i=0; while ! grep -q long-sleeper " .. q(err) .. " && [ $i -lt 500 ]; do sleep 0.01; i=$((i+1)); done",
    "touch " .. q(go) .. "; wait $pid; s=$?; cat " .. q(err) .. " >&2; exit $s"}, "\n"))
  os.execute("rm -rf " .. q(dir))
  lu.assertEquals(r.status, 0)
  lu.assertStrContains(r.stdout, "still running")
  lu.assertStrContains(r.stderr, "long-sleeper: waiting on sleep")
end

function TestIntrospection:test_dump_on_names_another_signal()
  local r = support.sh(support.shell_quote(support.LASYNC) .. " --dump-on SIGUSR1 -e '" ..
    "async.spawn(async.sleep, 30); async.sleep(0); " ..
    "os.execute(\"kill -USR1 \" .. io.open(\"/proc/self/stat\"):read(\"n\")); async.sleep(0.05)'")
  lu.assertEquals(r.status, 0)
  lu.assertStrContains(r.stderr, "waiting on sleep")
  local bad = support.sh(support.shell_quote(support.LASYNC) .. " --dump-on SIGNOPE -e ''")
  lu.assertEquals(bad.status, 1)
  lu.assertStrContains(bad.stderr, "unknown signal 'SIGNOPE'")
end

--------------------------------------------------------------- watchdog

TestWatchdog = support.suite({}, 10)

function TestWatchdog:tearDown() core.watchdog(false) end

function TestWatchdog:test_names_a_runaway_loop_while_it_runs_and_can_raise()
  local reports = {}
  core.watchdog(0.05, true)
  local ticks = 0
  local ticker = async.spawn(function() while true do async.sleep(0.005); ticks = ticks + 1 end end)
  local hog_line
  local hog = async.spawn(function()
    local x = 0
    hog_line = debug.getinfo(1, "l").currentline + 1
    while true do x = x + 1 end           -- the line the watchdog must name
  end)
  local ok, err = pcall(hog.await, hog)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "lasync watchdog: " .. hog:name() .. " has run")
  lu.assertStrContains(hog:traceback(), "tests/test_debug.lua:" .. hog_line .. ":")
  local before = ticks
  async.sleep(0.05)
  lu.assertTrue(ticks > before, "the loop goes on serving other tasks")
  ticker:cancel()
  pcall(ticker.await, ticker)
  lu.assertTrue(hog:info().cpu >= 0.05)
end

function TestWatchdog:test_report_only_mode_prints_and_lets_it_finish()
  local r = support.lasync_run([[
    require("async.core").watchdog(0.05)
    local t = async.spawn(function()
      local deadline = os.clock() + 0.3
      while os.clock() < deadline do end  -- line 4
      return "finished"
    end)
    print(t:await())
  ]])
  lu.assertEquals(r.status, 0)
  lu.assertStrContains(r.stdout, "finished")
  lu.assertStrContains(r.stderr, "lasync watchdog: task-2 has run")
  lu.assertStrContains(r.stderr, ":4: in function")
end

function TestWatchdog:test_names_a_runaway_loop_inside_a_generator()
  -- the hook must go on the coroutine that runs, not the task's own
  local r = support.lasync_run([[
    require("async.core").watchdog(0.05, true)
    local gen = coroutine.wrap(function()
      local x = 0
      while true do x = x + 1 end        -- line 4
    end)
    local t = async.spawn(function() gen() end)
    print(pcall(t.await, t))
  ]])
  lu.assertEquals(r.status, 0)
  lu.assertStrContains(r.stdout, "false")
  lu.assertStrContains(r.stdout, "lasync watchdog: task-2 has run")
  lu.assertStrContains(r.stderr, ":4: in function")
end

function TestWatchdog:test_bad_threshold()
  lu.assertErrorMsgContains("threshold must be", core.watchdog, -1)
end

------------------------------------------------------------- debug mode

TestDebugMode = support.suite({}, 10)

function TestDebugMode:test_unobserved_failure_reported_at_once()
  local src = [[
    local t = async.spawn(function() error("lost failure") end)
    async.sleep(0.01)
    io.stderr:write("--after--\n")
    local keep = t                          -- still referenced: not collected
    async.sleep(0)
  ]]
  local r = support.lasync_run(src, {})
  lu.assertStrContains(r.stderr, "lost failure")
  lu.assertTrue(r.stderr:find("--after--", 1, true) < r.stderr:find("lost failure", 1, true),
                "without debug mode it is reported at the end")
  local script = os.tmpname() .. ".lua"
  support.write_file(script, src)
  local d = support.sh("LASYNC_DEBUG=1 " .. support.shell_quote(support.LASYNC) .. " " .. script)
  os.remove(script)
  lu.assertTrue(d.stderr:find("lost failure", 1, true) < d.stderr:find("--after--", 1, true),
                "debug mode reports it when the task ends")
end

---------------------------------------------------------------- context

TestContext = support.suite {}

function TestContext:test_inherited_and_shadowed()
  local ctx = async.context
  lu.assertNil(ctx.get("request"))
  local out = async.spawn(function()
    ctx.set("request", "r1")
    local child = async.spawn(function()
      local seen = ctx.get("request")
      ctx.set("request", "r1.child")        -- shadows for itself only
      local grandchild = async.spawn(function() return ctx.get("request") end):await()
      return seen, ctx.get("request"), grandchild
    end)
    ctx.set("request", "r2")                -- after the spawn: not seen by it
    local a, b, c = child:await()
    return a, b, c, ctx.get("request")
  end)
  lu.assertEquals({out:await()}, {"r1", "r1.child", "r1.child", "r2"})
  lu.assertNil(ctx.get("request"))          -- nothing leaked into the test task
end

function TestContext:test_with_restores_and_all_lists()
  local ctx = async.context
  ctx.set("a", 1)
  local inside = ctx.with({a = 2, b = 3}, function() return ctx.all() end)
  lu.assertEquals(inside, {a = 2, b = 3})
  lu.assertEquals(ctx.all(), {a = 1})
  lu.assertErrorMsgContains("boom", ctx.with, {a = 9}, function() error("boom") end)
  lu.assertEquals(ctx.get("a"), 1)
  lu.assertEquals(ctx.get("missing", "default"), "default")
  lu.assertErrorMsgContains("key expected", ctx.set, nil, 1)
end

function TestContext:test_outside_a_task()
  local f = async.future()
  async.call_soon(function()
    f:resolve(pcall(async.context.set, "x", 1))
  end)
  local ok, err = f:await()
  lu.assertFalse(ok)
  lu.assertStrContains(err, "not inside a task")
end

support.run(...)
