-- async.testing: LuaUnit for async code. Each test runs in a task, with a
-- real-time timeout that fails it with the list of tasks still waiting and
-- where; a test that leaves tasks running or timers armed fails and names
-- them; a suite may run on the virtual clock, where time moves only when
-- every task waits and then jumps to the next deadline.
local core = require "async.core"
local async = require "async"

local testing = {default_timeout = 10}

local per_test_timeout = setmetatable({}, {__mode = "k"})

-- The virtual clock: time moves only when every task waits, and then jumps
-- to the next deadline (autojump: real seconds of idleness first, 0).
-- Returns the mode it replaced ("real" or "virtual").
function testing.use_virtual_clock(autojump) return core.clock("virtual", autojump or 0) end
function testing.use_real_clock() return core.clock("real") end
-- Moves the virtual clock forward by sec; the deadlines passed fire.
function testing.advance(sec) return core.advance(sec) end

-- Runs fn(...) on the virtual clock and puts the clock back after.
function testing.with_virtual_clock(fn, ...)
  local before = core.clock("virtual", 0)
  local res = table.pack(pcall(fn, ...))
  core.clock(before)
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

-- testing.with_timeout(sec, fn): fn as a test with its own timeout.
function testing.with_timeout(sec, fn)
  per_test_timeout[fn] = sec
  return fn
end

-- Where a waiting task waits: the first frame of the user's own code.
local function where(t)
  local stack = t:stack()
  if not stack then return nil end
  for line in stack:gmatch("[^\n]+") do
    local loc = line:match("^%s*([^%s:]+%.lua:%d+):")
    if loc and not loc:match("^async/") then return loc end
  end
  return (stack:match("\n%s*([^\n]+)"))
end
testing.where = where

-- One line per task: name, state and where it waits.
function testing.describe(t)
  local loc = where(t)
  return ("%s (%s%s)"):format(t:name(), t:state(), loc and " at " .. loc or "")
end

-- The live tasks other than `me`.
function testing.others(me)
  local list = {}
  for _, t in ipairs(core.tasks()) do
    if t ~= me then list[#list + 1] = t end
  end
  table.sort(list, function(a, b) return a:id() < b:id() end)
  return list
end

local function describe_all(list)
  local lines = {}
  for i, t in ipairs(list) do lines[i] = "  " .. testing.describe(t) end
  return table.concat(lines, "\n")
end

-- Cancels the leftovers of a test and waits for their cleanup (bounded).
local function sweep(list)
  for _, t in ipairs(list) do t:cancel("the test ended") end
  pcall(async.timeout, 1, function()
    for _, t in ipairs(list) do pcall(t.await, t) end
  end)
end

-- The handles open now, as {[type name] = count}.
local function handle_counts()
  local counts = {}
  for _, name in ipairs(core.handles()) do counts[name] = (counts[name] or 0) + 1 end
  -- libcurl's easy handles (async.http transfers) count as handles too,
  -- once the HTTP client is loaded: a response left open holds one.
  local http = package.loaded["async.core.http"]
  if http then counts["curl easy handle"] = http.stats().easy end
  return counts
end

-- Raises naming the handles open now beyond `before` (handle_counts()).
local function check_handles(before)
  local extra = {}
  for name, n in pairs(handle_counts()) do
    if n > (before[name] or 0) then extra[#extra + 1] = ("%d %s"):format(n - (before[name] or 0), name) end
  end
  if #extra > 0 then
    table.sort(extra)
    error("the test left handles open: " .. table.concat(extra, ", ") ..
          " (close sockets, servers, files and processes it opened)", 0)
  end
end

-- Waits sec seconds of real time (test time may be virtual).
local function real_sleep(sec)
  local f = async.future()
  local cancel = core.alarm(sec, function() f:resolve() end)
  local ok, err = pcall(f.await, f)
  cancel()
  if not ok then error(err, 0) end
end

-- pcall(check_handles, before), giving handles that are still finishing
-- (closing, or a worker thread reporting a cancelled job) up to a second of
-- real time: only a handle that stays open is a leak.
local function settle_handles(before)
  for _ = 1, 3 do async.sleep(0) end
  local ok, err = pcall(check_handles, before)
  for _ = 1, 100 do
    if ok then break end
    real_sleep(0.01)
    ok, err = pcall(check_handles, before)
  end
  return ok, err
end

-- Checks that nothing the test started is still alive; raises naming it.
function testing.check_clean(me)
  me = me or async.current()
  for _ = 1, 3 do async.sleep(0) end    -- let finished work drain
  local left = testing.others(me)
  if #left > 0 then
    local msg = "the test left tasks running:\n" .. describe_all(left)
    sweep(left)
    error(msg, 0)
  end
  local timers = core.stats().timers
  if timers ~= 0 then error("the test left " .. timers .. " timer(s) armed", 0) end
end

-- Runs fn(...) in the current task with a real-time timeout; returns
-- pcall's results, the timeout's report as the error when it fired.
function testing.run_with_timeout(sec, fn, ...)
  local me = async.current() or error("testing: not inside a task", 2)
  local report
  local stop = core.new_cancelled("test timed out")
  local cancel_alarm = core.alarm(sec, function()
    local lines = {("test timed out after %g s; it waits%s"):format(sec,
      where(me) and " at " .. where(me) or "")}
    local others = testing.others(me)
    if #others > 0 then lines[#lines + 1] = "tasks still waiting:\n" .. describe_all(others) end
    report = table.concat(lines, "\n")
    core.cancel(me, stop, 0)
  end)
  local res = table.pack(pcall(fn, ...))
  cancel_alarm()
  if report then
    core.withdraw(me, stop)
    if res[1] or res[2] == stop then return false, report end
    return false, report .. "\nthe test raised: " .. tostring(res[2])
  end
  return table.unpack(res, 1, res.n)
end

-- testing.suite(T [, opts]): wraps each test of T (also those defined
-- after the call) to run with a timeout (opts.timeout, or a number; default
-- testing.default_timeout) and a leak check, on the virtual clock when
-- opts.virtual_clock is set (true, or the autojump delay in seconds).
function testing.suite(T, opts)
  if type(opts) == "number" then opts = {timeout = opts} end
  opts = opts or {}
  local function wrap(name, fn)
    if type(fn) ~= "function" or type(name) ~= "string" or not name:match("^[Tt]est") then
      return fn
    end
    return function(...)
      local me = async.current()
      local before = core.clock()
      if opts.virtual_clock then
        core.clock("virtual", type(opts.virtual_clock) == "number" and opts.virtual_clock or 0)
      end
      local sec = per_test_timeout[fn] or opts.timeout or testing.default_timeout
      local handles = handle_counts()
      local ok, err = testing.run_with_timeout(sec, fn, ...)
      local clean, leak = pcall(testing.check_clean, me)
      if clean then clean, leak = settle_handles(handles) end
      core.clock(before)
      if not ok then
        if not clean then err = tostring(err) .. "\n(and then: " .. tostring(leak) .. ")" end
        error(err, 0)
      end
      if not clean then error(leak, 0) end
    end
  end
  for name, fn in pairs(T) do T[name] = wrap(name, fn) end
  return setmetatable(T, {__newindex = function(t, name, fn) rawset(t, name, wrap(name, fn)) end})
end

-- Runs a test function outside a suite with the same checks.
function testing.test(fn, opts)
  return testing.suite({test = fn}, opts).test
end

-- testing.run(...): runs the LuaUnit suites (the script's arguments are
-- LuaUnit's options: -o tap, -o junit -n file, -p pattern, ...); raises if
-- a test failed. The counts are kept in testing.last.
function testing.run(...)
  local lu = require "luaunit"
  local runner = lu.LuaUnit.new()
  local failures = runner:runSuite(...)
  local r = runner.result
  testing.last = {passed = r.successCount or 0, failed = r.notSuccessCount or 0,
                  skipped = r.skippedCount or 0}
  testing.ran = true
  io.stderr:write(("lasync-test: %d passed, %d failed, %d skipped\n"):format(
    testing.last.passed, testing.last.failed, testing.last.skipped))
  if failures ~= 0 then error(failures .. " test(s) failed", 0) end
end

-- Used by `lasync test`: runs one file's tests (it may call run itself).
function testing.run_file(file, ...)
  local chunk, err = loadfile(file)
  if not chunk then error(err, 0) end
  arg = {[0] = file, ...}
  chunk(...)
  if not testing.ran then testing.run(...) end
end

-- `lasync test [paths] [LuaUnit options]`: runs every test_*.lua under
-- the paths (default: tests/ if it exists, else .), each file in a process
-- of its own, passing the options to LuaUnit; prints the total as
-- "N passed, N failed, N skipped" and returns the exit status.
local takes_value = {["-o"] = true, ["--output"] = true, ["-n"] = true, ["--name"] = true,
                     ["-p"] = true, ["--pattern"] = true, ["-x"] = true, ["--exclude"] = true,
                     ["-r"] = true, ["--repeat"] = true}

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function discover(paths)
  local files = {}
  for _, p in ipairs(paths) do
    if p:match("%.lua$") then files[#files + 1] = p
    else
      local f = io.popen("find " .. quote(p) .. " -type f -name 'test_*.lua' 2>/dev/null | sort")
      local n = #files
      for line in f:lines() do files[#files + 1] = line end
      f:close()
      if #files == n then io.stderr:write("lasync test: no test_*.lua under ", p, "\n") end
    end
  end
  return files
end

function testing.command(...)
  local argv, paths, opts = {...}, {}, {}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a:sub(1, 1) == "-" then
      opts[#opts + 1] = quote(a)
      if takes_value[a] and argv[i + 1] then i = i + 1; opts[#opts + 1] = quote(argv[i]) end
    else paths[#paths + 1] = a end
    i = i + 1
  end
  if #paths == 0 then
    local d = io.open("tests")
    paths[1] = d and "tests" or "."
    if d then d:close() end
  end
  local exe = arg and arg[-1] or "lasync"
  local total = {passed = 0, failed = 0, skipped = 0}
  for _, file in ipairs(discover(paths)) do
    local p = io.popen(quote(exe) .. " --test-file " .. quote(file) .. " " ..
                       table.concat(opts, " ") .. " 2>&1")
    local counted = false
    for line in p:lines() do
      local a, b, c = line:match("^lasync%-test: (%d+) passed, (%d+) failed, (%d+) skipped$")
      if a then
        counted = true
        total.passed, total.failed = total.passed + a, total.failed + b
        total.skipped = total.skipped + c
      else io.write(line, "\n") end
    end
    p:close()
    if not counted then
      total.failed = total.failed + 1
      io.write(file, ": ran no test (it crashed or failed to load)\n")
    end
  end
  io.write(("%d passed, %d failed, %d skipped\n"):format(total.passed, total.failed, total.skipped))
  return total.failed > 0 and 1 or 0
end

return testing
