-- async.console: the REPL of a running program on a Unix socket, several
-- sessions at once, `lasync --console PATH` and `lasync attach PATH`.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"
local console = require "async.console"

local function sock_path()
  local p = os.tmpname()
  os.remove(p)
  return p .. ".sock"
end

-- Reads from conn until the text read so far contains `want` (plain);
-- returns it. Bounded by a timeout: a missing answer fails, never hangs.
local function read_until(conn, want)
  local got = ""
  async.timeout(5, function()
    while not got:find(want, 1, true) do
      local data = conn:read()
      if not data then error("connection ended before " .. want .. " in: " .. got) end
      got = got .. data
    end
  end)
  return got
end

local function session(path)
  local conn = async.net.connect_unix(path)
  read_until(conn, "> ")                  -- banner and prompt
  return conn
end

local function eval(conn, line)
  conn:write(line, "\n")
  return read_until(conn, "> ")
end

TestConsole = support.suite({}, 20)

function TestConsole:test_socket_is_0600_and_removed_on_close()
  local path = sock_path()
  local c = console.listen(path)
  local r = support.sh("stat -c %a " .. support.shell_quote(path))
  lu.assertEquals(r.stdout, "600\n")
  lu.assertStrContains(tostring(c), path)
  lu.assertEquals(c:path(), path)
  c:close()
  lu.assertTrue(c:closed())
  lu.assertNil(io.open(path))             -- the socket file is gone
  c:close()                               -- again: nothing
  lu.assertErrorMsgContains("console: closed", c.path, c)
  lu.assertErrorMsgContains("console: closed", c.sessions, c)
  lu.assertEquals(tostring(c), "Console<closed>")
end

function TestConsole:test_two_sessions_share_globals_and_one_leaving_stops_nothing()
  local path = sock_path()
  local c <close> = console.listen(path)
  local a, b = session(path), session(path)
  lu.assertEquals(c:sessions(), 2)
  lu.assertStrContains(eval(a, "shared_x = 41"), "> ")
  lu.assertStrContains(eval(b, "shared_x + 1"), "42")
  _G.the_console = c
  a:close()                               -- one session leaves
  local n
  for _ = 1, 100 do                       -- each try is a round trip through b
    n = eval(b, "the_console:sessions()"):match("(%d+)")
    if n == "1" then break end
  end
  lu.assertEquals(n, "1")
  lu.assertStrContains(eval(b, "shared_x"), "41")   -- the program goes on
  b:close()
  _G.the_console, _G.shared_x = nil, nil
end

function TestConsole:test_tasks_dump_and_cancel_from_a_session()
  local path = sock_path()
  local c <close> = console.listen(path)
  local ev = async.event()
  local worker = async.spawn(function() ev:wait() end)
  worker:set_name("the-worker")
  _G.the_worker = worker
  local s = session(path)
  lu.assertStrContains(eval(s, "tasks()"), "the-worker")
  local dump = eval(s, "async.dump()")
  lu.assertStrContains(dump, "the-worker: waiting on event")   -- in the session
  eval(s, "the_worker:cancel('from the console')")
  local ok, err = pcall(worker.await, worker)
  lu.assertFalse(ok)
  lu.assertStrContains(tostring(err), "from the console")
  s:close()
  _G.the_worker = nil
end

function TestConsole:test_closing_the_console_ends_its_sessions()
  local path = sock_path()
  local c = console.listen(path)
  local s = session(path)
  c:close()
  lu.assertNil(async.timeout(5, function() return s:read() end))
  s:close()
  lu.assertErrorMsgContains("ENOENT", async.net.connect_unix, path)
end

function TestConsole:test_bad_arguments()
  lu.assertErrorMsgContains("socket path expected, got nil", console.listen)
  lu.assertErrorMsgContains("table expected, got string", console.listen, "/tmp/x", "y")
  lu.assertErrorMsgContains("unknown option 'bogus'", console.listen, "/tmp/x", {bogus = 1})
  lu.assertErrorMsgContains("mode must be an integer", console.listen, "/tmp/x", {mode = "0600"})
  lu.assertErrorMsgContains("socket path of 1 to 107 bytes", console.listen, ("x"):rep(200))
  lu.assertErrorMsgContains("socket path of 1 to 107 bytes", console.listen, "")
  lu.assertErrorMsgContains("cannot listen at /nonexistent/dir/s", console.listen,
                            "/nonexistent/dir/s")
  local path = sock_path()
  local c <close> = console.listen(path)
  lu.assertErrorMsgContains("Address already in use", console.listen, path)
  lu.assertErrorMsgContains("socket path expected, got number", console.attach, 5)
  lu.assertErrorMsgContains("bad argument #1", c.path, 42)
end

-- The command line: a program run with --console, and `lasync attach`
-- (standard input piped) reading a global, changing one and leaving.
function TestConsole:test_lasync_console_and_attach()
  local path = sock_path()
  local exe = support.shell_quote(support.LASYNC)
  local script = os.tmpname()
  support.write_file(script, [[
    local exe, path = ...
    counter = 7
    local r = async.process.run{exe, "attach", path, input = "counter * 6\n.exit\n", timeout = 10}
    assert(r.ok, r.stderr)
    io.write(r.stdout)
  ]])
  local r = support.sh(exe .. " --console " .. support.shell_quote(path) .. " " .. script ..
                       " " .. exe .. " " .. support.shell_quote(path) .. " </dev/null")
  os.remove(script)
  lu.assertEquals(r.status, 0, r.stderr)
  lu.assertStrContains(r.stdout, "lasync console:")
  lu.assertStrContains(r.stdout, "42")
  lu.assertNil(io.open(path))             -- removed when the program ended
  local bad = support.sh(exe .. " attach " .. support.shell_quote(path) .. " </dev/null")
  lu.assertEquals(bad.status, 1)
  lu.assertStrContains(bad.stderr, "ENOENT")
  local none = support.sh(exe .. " attach </dev/null")
  lu.assertEquals(none.status, 1)
  lu.assertStrContains(none.stderr, "attach needs the console's socket path")
end

support.run(...)
