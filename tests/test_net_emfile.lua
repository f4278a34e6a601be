-- tests/test_net_emfile.lua: a server out of file descriptors (issue 13,
-- item 13). A lasync process with a lowered RLIMIT_NOFILE (ulimit -Sn in
-- sh -c) fills its descriptor table with held connections, then one more
-- client connects: the server's accept fails with EMFILE.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"

TestNetEmfile = support.suite({}, 30)

-- The script run under the lowered limit. It prints "OK <reports>
-- <failures>" when the server reported EMFILE once for a burst of failed
-- accepts and then served the client that waited.
local SCRIPT = [[
local net = async.net
local to_stderr = arg[1] == "stderr"      -- no on_error: the report goes there
local reports, failures, burst = {}, 0, async.future()
local gate = async.event()
local srv = net.listen("127.0.0.1", 0, function(c)
  local line = c:read_line()
  if line == "hold" then gate:wait() end
  c:write("echo " .. tostring(line) .. "\n")
end, {on_error = not to_stderr and function(err, desc) reports[#reports + 1] = {err, desc} end or nil})
-- count the failed accepts of the server's accept loop
local methods = getmetatable(srv.listener).__index
local accept = methods.accept
methods.accept = function(l)
  local ok, c = pcall(accept, l)
  if ok then return c end
  failures = failures + 1
  if failures == 3 then burst:resolve() end
  error(c, 0)
end
local _, port = srv:address()
local held, pending = {}, nil
async.wait_for(20, function()
  while not pending do
    local ok, c = pcall(net.connect, "127.0.0.1", port)
    if ok then
      local n = #held
      while srv:connections() == n and failures == 0 do async.sleep(0.001) end
      if failures > 0 then pending = c       -- the server could not accept it
      else c:write("hold\n") held[#held + 1] = c end
    else
      assert(c.code == "EMFILE", tostring(c))
      table.remove(held, 1):close()          -- one descriptor back, for a client
    end
  end
  burst:await()                              -- the server went on trying
  assert(to_stderr or #reports == 1, #reports .. " reports")
  gate:set()                                 -- the held handlers end
  pending:write("ping\n")
  assert(pending:read_line() == "echo ping") -- served once descriptors were back
end)
if to_stderr then print("OK")
else print("OK", #reports, failures, reports[1][1].code, reports[1][1].repeated, reports[1][2]) end
for _, c in ipairs(held) do c:close() end
pending:close()
srv:close()
]]

-- An accept that failed with EMFILE was silent: libuv accepts and closes
-- the waiting connections itself ("the EMFILE trick") and calls nobody, so
-- clients were dropped and nothing was logged. Root cause: the listener
-- used uv_listen. Now the listener accepts itself: on EMFILE it stops
-- polling (clients wait in the backlog), accept() raises the error, marked
-- `repeated` after the first of a burst so the server logs it once, and the
-- server keeps serving when descriptors are free again.
function TestNetEmfile:test_accept_failing_with_emfile_was_silent()
  local script = os.tmpname() .. ".lua"
  support.write_file(script, SCRIPT)
  local r = support.sh("ulimit -Sn 64; exec " .. support.shell_quote(support.LASYNC) .. " " ..
                       support.shell_quote(script) .. " </dev/null")
  os.remove(script)
  os.remove(script:sub(1, -5))
  lu.assertEquals(r.status, 0, r.stdout .. r.stderr)
  local reports, failures, code, repeated, desc = r.stdout:match("^OK\t(%d+)\t(%d+)\t(%u+)\t(%a+)\t(%a+)")
  lu.assertEquals(reports, "1", r.stdout)
  lu.assertTrue(tonumber(failures) >= 3)
  lu.assertEquals(code, "EMFILE")
  lu.assertEquals(repeated, "false")
  lu.assertEquals(desc, "accept")
  lu.assertEquals(r.stderr, "")
end

-- Without on_error the report goes to stderr, once, naming the server.
function TestNetEmfile:test_emfile_report_on_stderr_names_the_server()
  local script = os.tmpname() .. ".lua"
  support.write_file(script, SCRIPT)
  local r = support.sh("ulimit -Sn 64; exec " .. support.shell_quote(support.LASYNC) .. " " ..
                       support.shell_quote(script) .. " stderr </dev/null")
  os.remove(script)
  os.remove(script:sub(1, -5))
  lu.assertEquals(r.status, 0, r.stdout .. r.stderr)
  lu.assertEquals(r.stdout, "OK\n")
  local _, n = r.stderr:gsub("too many open files %(EMFILE%)", "")
  lu.assertEquals(n, 1, r.stderr)
  lu.assertStrContains(r.stderr, "lasync: server 127.0.0.1:")
  lu.assertStrContains(r.stderr, "reported once until an accept succeeds")
end

support.run(...)
