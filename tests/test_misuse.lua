-- tests/test_misuse.lua: the misuse sweep (issue 13, "make the class
-- impossible"). Every public function, method and metamethod, found by
-- enumeration, is called with wrong values (nil, odd numbers, strings,
-- tables, other types' objects, closed objects); each call must return or
-- raise a Lua error, never crash or hang the host. The sweeps run in child
-- processes (see the end), so `make test` and `make asan test` report a
-- crash as a failed test with the child's output.
--
-- Enumeration, so new code joins without an edit here:
--  * functions: every module in package.preload whose name starts with
--    "async" (native and Lua modules alike), its function fields;
--  * types: every metatable in the registry named "lasync.*", and the
--    metatables of the objects and classes those modules hand out; their
--    metamethods and the functions of their __index table.
-- Objects of a type come from CONSTRUCTORS below, keyed by the type's
-- __name. A type without one is still swept with wrong `self` values.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"
local misuse_net = require "misuse_net"
local misuse_db = require "misuse_db"
local core = require "async.core"

local pack, unpack = table.pack, table.unpack

-- MISUSE_TRACE=1 names each function as it is swept; MISUSE_ONLY=pattern
-- sweeps only the names that match (to chase one finding).
local TRACE, ONLY = os.getenv("MISUSE_TRACE"), os.getenv("MISUSE_ONLY")

-- What the sweep must not call, each with the reason.
local EXCLUDE = {
  -- the test runner's own entry points: they run suites or exit
  ["async.testing.run"] = "runs LuaUnit on the arguments (a test run inside a test)",
  ["async.testing.run_file"] = "runs a file as a test suite",
  ["async.testing.command"] = "the `lasync test` command: runs suites, exits",
  ["async.testing.check_clean"] = "cancels every other task (the sweep's own)",
  -- the REPL's entry point reads the terminal until end of input
  ["async.repl.new"] = "starts an interactive REPL on stdin",
}

-- Calls that take real action with plausible values: only values that
-- cannot name a target are allowed through.
local function numeric(v) return math.type(tonumber(v)) ~= nil end
local GUARDS = {
  -- kill(pid, sig) with a wrong pid that happens to be a number would
  -- signal another process (-1: every process we may signal; 0: our
  -- group; 1: init): only non-numeric pids are swept.
  ["async.signal.kill"] = function(a) return not numeric(a[1]) end,
  ["async.core.signal.kill"] = function(a) return not numeric(a[1]) end,
}
-- async.core.fs is the raw layer under fs.File: it takes file descriptors
-- as numbers, and a number names any descriptor of the process, the
-- loop's own included (closing one aborts libuv). Only non-numeric
-- descriptors are swept; fs.File, which owns its descriptor, is swept whole.
for _, f in ipairs{"close", "close_now", "read", "write", "fstat", "fsync", "truncate"} do
  GUARDS["async.core.fs." .. f] = function(a) return not numeric(a[1]) end
end

-- Calls that change the whole process are undone after each call.
local RESTORE = {
  ["async.repl.wrap_stdio"] = function() require("async.repl").unwrap_stdio() end,
}

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do if type(k) == "string" then ks[#ks + 1] = k end end
  table.sort(ks)
  return ks
end

------------------------------------------------------------ the values

local tmp                                -- a scratch directory for paths
local LONG = string.rep("z", 70000)      -- past 64 KiB limits
local function wrong_values()
  local v = {
    nil, true, false, 0, -1, 1, 3, 1.5, -0.5, 2^53, math.maxinteger, math.mininteger,
    0 / 0, math.huge, -math.huge, "", "\0x", tmp .. "/x", LONG,
    {}, {1, 2, n = 1e9}, setmetatable({}, {__index = function() error("trap", 0) end}),
    function() end, coroutine.create(function() end), io.stdout,
  }
  v.n = 25
  return v
end

-- A few wrong values for the second and later arguments (the cross
-- product of every value in every position would take minutes).
local function short_values()
  local v = {nil, -1, 0 / 0, {}}
  v.n = 4
  return v
end

------------------------------------------------------- objects of types

-- CONSTRUCTORS[__name] = function() return obj, cleanup end: a fresh,
-- live object of the type; cleanup(obj) ends what it may still hold.
local function closer(o)
  if type(o) == "userdata" or type(o) == "table" then
    local ok, close = pcall(function() return o.close end)
    if ok and type(close) == "function" then pcall(close, o) end
  end
end

local function listen()
  return async.net.listen("127.0.0.1", 0, function(conn) pcall(conn.read_all, conn) end)
end

-- Ends a child by its pid: a swept close() may have let go of its handle.
local function kill(p)
  pcall(async.signal.kill, p.pid, "SIGKILL")
  pcall(p.wait, p)
  closer(p)
end

local consoles = 0                      -- a socket path of its own for each console
local CONSTRUCTORS = {
  ["lasync.Task"] = function()
    return async.spawn(async.sleep, 10), function(t) t:cancel() pcall(t.await, t) end
  end,
  ["lasync.Future"] = function() return async.future(), function(f) f:cancel() end end,
  ["lasync.Handle"] = function()
    return async.call_later(10, function() end), function(h) h:cancel() end
  end,
  ["lasync.Lock"] = function() return async.lock() end,
  ["lasync.Event"] = function() return async.event() end,
  ["lasync.Condition"] = function() return async.condition() end,
  ["lasync.Semaphore"] = function() return async.semaphore(1) end,
  ["lasync.Barrier"] = function() return async.barrier(2) end,
  ["lasync.Queue"] = function() return async.queue(2) end,
  ["lasync.Listener"] = function() return listen().listener, closer end,
  ["lasync.Server"] = function() return listen(), closer end,
  ["lasync.Stream"] = function()
    local srv = listen()
    local s = async.net.connect("127.0.0.1", select(2, srv:address()))
    return s, function(o) closer(o) closer(srv) end
  end,
  ["lasync.Udp"] = function() return async.net.udp_bind("127.0.0.1", 0), closer end,
  ["lasync.File"] = function() return async.fs.open(tmp .. "/file", "w+"), closer end,
  ["lasync.Proc"] = function()
    local p = async.process.spawn{"sleep", "10"}
    return p.handle, function() kill(p) end
  end,
  ["lasync.Process"] = function()
    local p = async.process.spawn{"sleep", "10"}
    return p, kill
  end,
  ["lasync.Executor"] = function() return async.executor{workers = 1}, closer end,
  ["lasync.Thread"] = function()
    return async.thread.spawn(function(ch) ch:recv() end),
      function(th) pcall(th.close, th) pcall(th.join, th) end
  end,
  ["lasync.SignalHandler"] = function()
    return async.signal.on("SIGUSR2", function() end), function(h) h:remove() end
  end,
  ["lasync.Console"] = function()
    consoles = consoles + 1
    return async.console.listen(("%s/console%d.sock"):format(tmp, consoles)), closer
  end,
  ["lasync.Scope"] = function()
    local g
    async.scope(function(group) g = group end)
    return g
  end,
}

-- METHODS[__name]: the methods of a type whose __index is a function.
local METHODS = {}
misuse_net.add(CONSTRUCTORS, METHODS, function() return tmp end)
misuse_db.add(CONSTRUCTORS, METHODS)

-- The constructors of type ty: its __name's entry and its variants
-- ("__name (what)") whose objects have ty's metatable.
local function constructors_of(ty)
  local found = {}
  for _, k in ipairs(sorted_keys(CONSTRUCTORS)) do
    if k == ty.name or k:sub(1, #ty.name + 2) == ty.name .. " (" then
      found[#found + 1] = CONSTRUCTORS[k]
    end
  end
  return found
end

-------------------------------------------------------------- the calls

local calls = 0

-- Ends what a call handed back (a server, a task, a handle...), so the
-- leak check at the end of each test holds.
local function dispose(v)
  local mt = getmetatable(v)
  if mt == nil then return end
  local name = type(mt) == "table" and rawget(mt, "__name")
  if name == "lasync.Task" or name == "lasync.Future" or name == "lasync.Handle" then
    pcall(v.cancel, v)
  elseif name == "lasync.SignalHandler" then pcall(v.remove, v)
  elseif name == "lasync.Proc" or name == "lasync.Process" then
    pcall(v.kill, v, "SIGKILL")
    pcall(v.wait, v)
  end
  closer(v)
end

-- Calls fn(args) inside a deadline of 0 (so a call that would wait is
-- cancelled at its first wait) and ends what it returns. Any Lua error is
-- an acceptable answer; a crash is what this suite exists to catch.
local function try(name, fn, args)
  if ONLY and not name:find(ONLY) then return end
  local guard = GUARDS[name]
  if guard and not guard(args) then return end
  calls = calls + 1
  if TRACE == "2" then
    local d = {}
    for i = 1, args.n do d[i] = type(args[i]) == "string" and #args[i] > 20 and "<long>" or tostring(args[i]) end
    io.stderr:write("#  ", name, "(", table.concat(d, ", "), ")\n")
  end
  local res = pack(pcall(async.timeout, 0, fn, unpack(args, 1, args.n)))
  for i = 2, res.n do dispose(res[i]) end
  if RESTORE[name] then RESTORE[name]() end
  -- calls that switch the host's modes are switched back
  if core.clock() ~= "real" then core.clock("real") end
  core.watchdog(false)
end

local function args(...) return pack(...) end

-- Sweeps a plain function: f(v), f(v, v), f(x, v) for x a few plausible
-- first arguments, f(v1, v2) for the short list.
local function sweep_function(name, fn, extra, others)
  if TRACE then io.stderr:write("# ", name, " ", os.clock(), " ", async.time(), "\n") end
  local vals, short = wrong_values(), short_values()
  for i = 1, vals.n do
    local v = vals[i]
    try(name, fn, args(v))
    if v == LONG then goto next end     -- once is enough: a text helper takes 0.5 s on it
    try(name, fn, args(v, v))
    for j = 1, #extra do try(name, fn, args(extra[j], v)) end
    for j = 1, short.n do try(name, fn, args(v, short[j], v)) end
    ::next::
  end
  for _, o in ipairs(others) do          -- objects of every type, as arguments
    try(name, fn, args(o))
    try(name, fn, args(o, o))
  end
end

------------------------------------------------------------ enumeration


-- The modules of the product: every preloaded name starting "async".
local function modules()
  local mods = {}
  for _, name in ipairs(sorted_keys(package.preload)) do
    if name:match("^async") then
      local ok, m = pcall(require, name)
      if ok and type(m) == "table" then mods[#mods + 1] = {name = name, m = m} end
    end
  end
  return mods
end

-- Every type: registry metatables named "lasync.*", and tables with an
-- __index found in the modules (the Lua classes). Keyed by __name (or
-- where found), each {mt =, methods = {name -> fn}, meta = {name -> fn}}.
local function types(mods)
  local found, seen = {}, {}
  local function add(name, mt)
    if type(mt) ~= "table" or seen[mt] then return end
    seen[mt] = true
    name = rawget(mt, "__name") or name
    local ty = {mt = mt, name = name, methods = {}, meta = {}}
    for _, k in ipairs(sorted_keys(mt)) do
      local v = rawget(mt, k)
      if type(v) == "function" then
        if k:match("^__") then ty.meta[k] = v else ty.methods[k] = v end
      end
    end
    local index = rawget(mt, "__index")
    if type(index) == "table" then
      for _, k in ipairs(sorted_keys(index)) do
        if type(index[k]) == "function" then ty.methods[k] = index[k] end
      end
    end
    found[#found + 1] = ty
  end
  for _, k in ipairs(sorted_keys(debug.getregistry())) do
    if k:match("^lasync%.") then add(k, debug.getregistry()[k]) end
  end
  for _, mod in ipairs(mods) do
    for _, k in ipairs(sorted_keys(mod.m)) do
      local v = mod.m[k]
      if type(v) == "table" and rawget(v, "__index") ~= nil then add(mod.name .. "." .. k, v) end
    end
  end
  -- objects made by the constructors may carry metatables found nowhere else
  for name, make in pairs(CONSTRUCTORS) do
    local ok, o, cleanup = pcall(make)
    assert(ok, "constructor of " .. name .. ": " .. tostring(o))
    local mt = getmetatable(o)
    add(name, mt)
    for _, ty in ipairs(found) do    -- methods behind an __index function
      if ty.mt == mt and METHODS[ty.name] then
        for _, k in ipairs(METHODS[ty.name]) do ty.methods[k] = o[k] end
      end
    end
    if cleanup then pcall(cleanup, o) end
  end
  table.sort(found, function(a, b) return tostring(a.name) < tostring(b.name) end)
  return found
end

-- One live object of each constructible type, for wrong-`self` calls.
local function other_objects()
  local objs, cleanups = {}, {}
  for _, name in ipairs(sorted_keys(CONSTRUCTORS)) do
    local ok, o, cleanup = pcall(CONSTRUCTORS[name])
    if ok then
      objs[#objs + 1] = o
      cleanups[#cleanups + 1] = function() if cleanup then pcall(cleanup, o) end end
    end
  end
  return objs, function() for _, c in ipairs(cleanups) do c() end end
end

-- Sweeps a method or metamethod of type ty: wrong self (every wrong value
-- and every other type's object), then a live object with wrong
-- arguments, then the same object once closed.
local function sweep_method(ty, mname, fn, others)
  local name = ty.name .. ":" .. mname
  if TRACE then io.stderr:write("# ", name, " ", os.clock(), " ", async.time(), "\n") end
  if EXCLUDE[name] then return end
  local vals, short = wrong_values(), short_values()
  for i = 1, vals.n do try(name, fn, args(vals[i], vals[i])) end
  for _, o in ipairs(others) do
    if getmetatable(o) ~= ty.mt then try(name, fn, args(o, o)) end
  end
  for _, make in ipairs(constructors_of(ty)) do
    local ok, obj, cleanup = pcall(make)
    lu.assertTrue(ok, "constructor of " .. ty.name .. ": " .. tostring(obj))
    if getmetatable(obj) == ty.mt then
      for i = 1, vals.n do
        try(name, fn, args(obj, vals[i]))
        if vals[i] ~= LONG then
          for j = 1, short.n do try(name, fn, args(obj, vals[i], short[j])) end
        end
      end
    end
    if cleanup then pcall(cleanup, obj) end
    closer(obj)                          -- closed (or ended): the same again
    if getmetatable(obj) == ty.mt then
      for i = 1, vals.n do try(name, fn, args(obj, vals[i])) end
    end
  end
end

---------------------------------------------------------------- tests

-- The sweeps run in child processes (MISUSE_CHILD=1 and the sweep's test
-- name), each from a fresh host: a crash is then a failed test showing the
-- child's last words, not a dead suite; and each process stays under
-- ThreadSanitizer's limit (64 Ki frames on its shadow stack, to which each
-- error longjmp'd out of an instrumented C function adds one).
local CHILD = os.getenv("MISUSE_CHILD")
local PARTS = 2                          -- children per sweep
-- In a child, MISUSE_CHILD="k/n": it sweeps the k-th of every n names.
local part, nparts = (CHILD or ""):match("^(%d+)/(%d+)$")
part, nparts = tonumber(part), tonumber(nparts)
local ordinal = 0
local function mine()
  ordinal = ordinal + 1
  return not nparts or ordinal % nparts == part
end

local Sweep = support.suite({}, 120)

function Sweep:setUp()
  tmp = async.fs.temp_dir()
  calls = 0
end

function Sweep:tearDown()
  misuse_net.stop()
  misuse_db.stop()
  os.execute("rm -rf '" .. tmp .. "'")
end

function Sweep:test_every_module_function()
  local extra = {function() end, 1, "x", {}}
  local others, cleanup = other_objects()
  local n = 0
  for _, mod in ipairs(modules()) do
    for _, k in ipairs(sorted_keys(mod.m)) do
      local name = mod.name .. "." .. k
      if type(mod.m[k]) == "function" and not EXCLUDE[name] and mine() then
        sweep_function(name, mod.m[k], extra, others)
        n = n + 1
      end
    end
  end
  cleanup()
  misuse_net.stop()
  misuse_db.stop()
  async.sleep(0.01)                       -- what the calls spawned ends
  lu.assertTrue(n * (nparts or 1) > 100, "only " .. n .. " functions found")
  print(("# misuse: %d functions, %d calls"):format(n, calls))
end

function Sweep:test_every_method_and_metamethod()
  local tys = types(modules())
  local others, cleanup = other_objects()
  local n = 0
  for _, ty in ipairs(tys) do
    for _, set in ipairs{ty.methods, ty.meta} do
      for _, k in ipairs(sorted_keys(set)) do
        if mine() then
          sweep_method(ty, k, set[k], others)
          n = n + 1
        end
      end
    end
  end
  cleanup()
  misuse_net.stop()
  misuse_db.stop()
  async.sleep(0.01)
  lu.assertTrue(#tys > 20, "only " .. #tys .. " types found")
  print(("# misuse: %d types, %d methods and metamethods, %d calls"):format(#tys, n, calls))
end

if CHILD then
  TestMisuseSweep = Sweep
else
  TestMisuse = support.suite({}, 300)

  -- Runs the sweep `name` in PARTS children at once (each core sweeps a
  -- part); fails with a failed one's output's end.
  local function child(name)
    local dir = async.fs.temp_dir()
    local cmds = {}
    for k = 0, PARTS - 1 do
      cmds[#cmds + 1] = ("(MISUSE_CHILD=%d/%d timeout 120 %s tests/test_misuse.lua TestMisuseSweep.%s </dev/null >%s/out%d 2>&1; echo $? >%s/status%d) &")
                        :format(k, PARTS, support.shell_quote(support.LASYNC), name, dir, k, dir, k)
    end
    os.execute(table.concat(cmds, " ") .. " wait")
    for k = 0, PARTS - 1 do
      local out = support.slurp(dir .. "/out" .. k)
      local status = tonumber(support.slurp(dir .. "/status" .. k))
      if status ~= 0 then
        os.execute("rm -rf '" .. dir .. "'")
        lu.fail(("the sweep %s (part %d/%d) ended with status %s (124: hung; 128 or more: crashed):\n%s")
                :format(name, k, PARTS, tostring(status), out:sub(-3000)))
      end
      print(out:match("# misuse:[^\n]*"))
    end
    os.execute("rm -rf '" .. dir .. "'")
  end

  function TestMisuse:test_every_module_function() child("test_every_module_function") end
  function TestMisuse:test_every_method_and_metamethod() child("test_every_method_and_metamethod") end

  -- The sweep sees what it must: a type registered the usual way joins it.
  function TestMisuse:test_enumeration_finds_registered_types()
    tmp = async.fs.temp_dir()
    local names = {}
    for _, ty in ipairs(types(modules())) do names[ty.name] = true end
    misuse_net.stop()
    misuse_db.stop()
    os.execute("rm -rf '" .. tmp .. "'")
    for _, want in ipairs{"lasync.Task", "lasync.Stream", "lasync.Executor", "lasync.Thread",
                          "lasync.File", "lasync.Scope", "lasync.Queue", "lasync.HttpRequest",
                          "lasync.WebSocket", "lasync.TlsStream", "lasync.HttpSessionObject",
                          "lasync.HttpServer", "lasync.Alarm", "lasync.JSONError", "lasync.Console",
                          "lasync.RedisClient", "lasync.RedisSubscriber", "lasync.JobQueue",
                          "lasync.PgPool", "lasync.PgLease"} do
      lu.assertTrue(names[want], want .. " not found by the sweep's enumeration")
    end
  end
end

support.run(...)
