-- tests/support.lua: what every suite shares. `support.suite(T)` wraps each
-- test of T so it fails if it leaves a task running or a timer armed
-- (STYLE 13: count what must happen, then check it happened), and cancels
-- the leftovers so one test's leak does not spill into the next.
local core = require "async.core"
local M = {}

local function leftovers()
  local me, left = async.current(), {}
  for _, t in ipairs(core.tasks()) do
    if t ~= me then left[#left + 1] = t end
  end
  return left
end

function M.check_clean()
  for _ = 1, 3 do async.sleep(0) end    -- let finished work drain
  local left = leftovers()
  if #left > 0 then
    local names = {}
    for i, t in ipairs(left) do names[i] = tostring(t); t:cancel("test cleanup") end
    for _, t in ipairs(left) do pcall(t.await, t) end
    error("test left tasks running: " .. table.concat(names, ", "), 0)
  end
  local timers = core.stats().timers
  if timers ~= 0 then error("test left " .. timers .. " timer(s) armed", 0) end
end

-- Timers armed now, not counting the watchdogs of running tests.
M.watchdogs = 0
function M.timers()
  return core.stats().timers - M.watchdogs
end

-- Calls fn(...) in the current task; if it is still running after sec
-- seconds (a lost wake-up, or a cancellation that never came), cancels the
-- task so the test fails at once instead of hanging the suite. Returns
-- pcall's results, with the watchdog's message as the error if it fired.
local function watched(sec, fn, ...)
  local me = async.current()
  local msg = ("test watchdog: still running after %g s (lost wake-up or missing cancellation?)"):format(sec)
  local stop = core.new_cancelled(msg)
  local fired = false
  M.watchdogs = M.watchdogs + 1
  local h = async.call_later(sec, function()
    fired = true
    core.cancel(me, stop, 0)
  end)
  local res = table.pack(pcall(fn, ...))
  h:cancel()
  M.watchdogs = M.watchdogs - 1
  if fired then
    core.withdraw(me, stop)             -- if it was never delivered
    if res[1] or res[2] == stop then return false, msg end
    return false, msg .. "; the test raised: " .. tostring(res[2])
  end
  return table.unpack(res, 1, res.n)
end

-- support.suite(T [, watchdog]): wraps each test of T to check for leaks
-- afterwards, and to fail (not hang) when it runs past `watchdog` seconds
-- (default 5; tests here take milliseconds). Tests are usually defined
-- after the call (`TestX = support.suite {}` then `function TestX:test_y()`),
-- so those are wrapped as they are added, through __newindex.
function M.suite(T, watchdog)
  watchdog = watchdog or 5
  local function wrap(name, fn)
    if type(fn) ~= "function" or type(name) ~= "string" or not name:match("^test") then
      return fn
    end
    return function(...)
      local ok, err = watched(watchdog, fn, ...)
      local clean, leak = pcall(M.check_clean)
      if not ok then
        if not clean then err = tostring(err) .. "\n(and then: " .. tostring(leak) .. ")" end
        error(err, 0)
      end
      if not clean then error(leak, 0) end
    end
  end
  for name, fn in pairs(T) do T[name] = wrap(name, fn) end
  return setmetatable(T, {__newindex = function(t, name, fn)
    rawset(t, name, wrap(name, fn))
  end})
end

-- A list that records events, for asserting order.
function M.log()
  local l = {}
  return l, function(v) l[#l + 1] = v end
end

-- Subprocesses, for what only shows outside the process (stderr reports,
-- exit status). They block the loop while they run; keep them short.
M.LASYNC = os.getenv("LASYNC") or "build/lasync"

function M.shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end
M.slurp = slurp

function M.write_file(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- Runs the shell command cmd with stdout and stderr captured; returns
-- {status = exit code (128 + n for signal n), stdout = ..., stderr = ...}.
function M.sh(cmd)
  local out, err = os.tmpname(), os.tmpname()
  local ok, how, code = os.execute("(" .. cmd .. ") >" .. out .. " 2>" .. err)
  local r = {stdout = slurp(out), stderr = slurp(err)}
  os.remove(out); os.remove(err)
  r.status = how == "signal" and 128 + code or code
  return r
end

-- Runs the Lua source src as a script of a new lasync process, with the
-- given extra arguments (a list of strings); returns as M.sh, plus
-- r.script, the path the script had (removed by then).
function M.lasync_run(src, args)
  local script = os.tmpname() .. ".lua"
  M.write_file(script, src)
  local q = {}
  for i, a in ipairs(args or {}) do q[i] = M.shell_quote(a) end
  local r = M.sh(M.shell_quote(M.LASYNC) .. " " .. M.shell_quote(script) .. " " ..
                 table.concat(q, " ") .. " </dev/null")
  os.remove(script)
  os.remove(script:sub(1, -5))          -- os.tmpname may have made it
  r.script = script
  return r
end

-- support.run(...): runs the LuaUnit suites with the script's arguments
-- (tests/run.sh passes "-o tap") and fails the script if any test failed.
function M.run(...)
  local lu = require "luaunit"
  local failures = lu.LuaUnit.run(...)
  if failures ~= 0 then error(failures .. " test(s) failed", 0) end
end

return M
