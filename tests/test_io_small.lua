-- tests/test_io_small.lua: the smaller regressions of issue 13 (item 13) in
-- the I/O and thread modules: read_line's limit, UDP send_to errors and
-- size, process spawn's checks, tostring and kill(0), the error for a table
-- nested too deeply to cross to a thread, repl.wrap_stdio's arguments.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"
local io_ = require "iosupport"
local net, process = async.net, async.process

TestIoSmall = support.suite({}, 20)

local function raises(fn, ...)
  local ok, err = pcall(fn, ...)
  lu.assertFalse(ok, "no error")
  return err
end

-- read_line(limit) refused a line of exactly `limit` bytes; the docs say
-- only longer ones. Root cause: the limit was checked against the line
-- with its "\n" (limit + 1 bytes), as for read_until, whose limit counts
-- the separator.
function TestIoSmall:test_read_line_refused_a_line_of_exactly_limit_bytes()
  local a, b = io_.pair()
  a:write("abcde\nabcde\r\nabcdef\n")
  lu.assertEquals(b:read_line(5), "abcde")
  lu.assertEquals(b:read_line(5), "abcde")     -- "\r\n" is not part of the line
  local err = raises(b.read_line, b, 5)
  lu.assertEquals(err.code, "ELIMIT")
  lu.assertEquals(b:read_line(6), "abcdef")    -- the long line stayed on the stream
  -- the "\n" after exactly `limit` bytes arrives later
  local t = async.spawn(b.read_line, b, 5)
  a:write("12345")
  async.sleep(0.01)
  lu.assertFalse(t:done())
  a:write("\n")
  lu.assertEquals(t:await(), "12345")
  -- limit + 1 bytes that are no "\r": too long already, no wait for more
  a:write("123456")
  err = select(2, pcall(async.wait_for, 5, b.read_line, b, 5))
  lu.assertEquals(err.code, "ELIMIT", tostring(err))
  lu.assertEquals(b:read(6), "123456")
  -- a last line of exactly `limit` bytes, without "\n"
  a:write("vwxyz")
  a:close()
  lu.assertEquals(b:read_line(5), "vwxyz")
  lu.assertNil(b:read_line(5))
  b:close()
  -- read_until's limit still counts the separator
  a, b = io_.pair()
  a:write("abc;")
  lu.assertEquals(raises(b.read_until, b, ";", 3).code, "ELIMIT")
  lu.assertEquals(b:read_until(";", 4), "abc;")
  a:close()
  b:close()
end

-- UDP send_to errors named our own socket ("send_to 127.0.0.1:0") instead
-- of the target, and the docs promised 65,536-byte datagrams where 65,507
-- is the most an IPv4 datagram holds. Root cause: the error used the
-- socket's description; the size check used the receive buffer's size.
function TestIoSmall:test_udp_send_to_errors_named_our_socket()
  local u <close> = net.udp_bind("127.0.0.1", 0)
  local err = raises(u.send_to, u, "x", "255.255.255.255", 9)  -- no SO_BROADCAST
  lu.assertEquals(err.code, "EACCES")
  lu.assertEquals(err.address, "255.255.255.255:9")
  lu.assertEquals(tostring(err), "send_to 255.255.255.255:9: permission denied (EACCES)")
  local r <close> = net.udp_bind("127.0.0.1", 0)
  local _, port = r:address()
  u:send_to(("x"):rep(65507), "127.0.0.1", port)
  lu.assertEquals(#r:recv_from(), 65507)
  err = raises(u.send_to, u, ("x"):rep(65508), "127.0.0.1", port)
  lu.assertStrContains(err, "send_to 127.0.0.1:" .. port ..
                       ": datagram too large (65508 bytes; at most 65507)")
end

-- spawn cut arguments and the environment short at a NUL byte (exec takes
-- C strings), accepted an env key with '=' (it set another variable), and
-- reported a missing cwd as "spawn true: no such file or directory" (the
-- child's chdir and exec fail alike). Root cause: the strings went to
-- libuv unchecked, and its ENOENT was named after the command.
function TestIoSmall:test_spawn_checks_nul_bytes_env_keys_and_cwd()
  lu.assertStrContains(raises(process.spawn, {"echo", "a\0b"}),
                       "spawn: argument 2 contains a NUL byte")
  lu.assertStrContains(raises(process.spawn, {"echo\0x"}), "spawn: argument 1 contains a NUL byte")
  lu.assertStrContains(raises(process.spawn, {"true", env = {["A=B"] = "c"}}),
                       "env key 'A=B' is not a variable name")
  lu.assertStrContains(raises(process.spawn, {"true", env = {A = "b\0c"}}),
                       "env.A contains a NUL byte")
  lu.assertStrContains(raises(process.spawn, {"true", cwd = "/tmp\0x"}), "cwd contains a NUL byte")
  local missing = "/nonexistent-lasync-" .. io_.pid
  local err = raises(process.spawn, {"true", cwd = missing})
  lu.assertEquals(err.code, "ENOENT")
  lu.assertEquals(err.cwd, missing)
  lu.assertEquals(tostring(err), "spawn true: cwd " .. missing .. ": no such file or directory (ENOENT)")
  err = raises(process.run, {"true", cwd = "/etc/passwd"})
  lu.assertEquals(err.code, "ENOTDIR")
  -- the command itself missing is still named as such
  err = raises(process.spawn, {"/no/such/cmd", cwd = "/tmp"})
  lu.assertEquals(tostring(err), "spawn /no/such/cmd: no such file or directory (ENOENT)")
  -- a valid environment still works
  local r = process.run{"sh", "-c", "echo $LASYNC_T", env = {LASYNC_T = "ok"}}
  lu.assertEquals(r.stdout, "ok\n")
end

-- tostring(proc) said "running" after the child exited and the Process was
-- closed, and kill(0) (the existence check) was refused. Root cause: the
-- exit was known only to the handle, which close lets go of; the signal
-- check took 1..64 only.
function TestIoSmall:test_process_tostring_after_exit_and_kill_0()
  local p = process.spawn{"sleep", "30"}
  lu.assertTrue(p:kill(0))                -- there: nothing sent
  lu.assertNil(p:status())
  p:kill()
  lu.assertEquals(select(2, p:wait()), "SIGTERM")
  lu.assertFalse(p:kill(0))               -- gone
  p:close()
  lu.assertStrContains(tostring(p), "killed by SIGTERM")
  local q = process.spawn{"true"}
  q:wait()
  q:close()
  lu.assertStrContains(tostring(q), "exited 0")
  lu.assertEquals(q:wait(), 0)
  lu.assertEquals(q:status(), 0)
  lu.assertErrorMsgContains("not a signal number", p.kill, p, -1)
end

-- A table nested too deeply to send to a thread got a 3 KB error: the path
-- of all 1000 levels. Root cause: the error path had no bound; now it
-- shows the first and last steps.
function TestIoSmall:test_deep_table_error_for_a_thread_was_3_kb()
  local t = {}
  local c = t
  for _ = 1, 1100 do c[1] = {} c = c[1] end
  local err = raises(async.to_thread, function() end, t)
  lu.assertStrContains(err, "table nested over 1000 levels deep cannot cross to a thread")
  lu.assertTrue(#err < 200, #err .. " bytes")
  lu.assertStrContains(err, "args[1][1][1][1][1][1][1]...[1][1]:")
  local v = {}
  c = v
  for _ = 1, 20 do c.x = {} c = c.x end
  c.f = io.stdout
  err = raises(async.to_thread, function() end, v)
  lu.assertStrContains(err, "args[1].x.x.x.x.x.x....x.f: userdata cannot cross")
  -- a short path is shown whole
  lu.assertStrContains(raises(async.to_thread, function() end, {a = {b = io.stdout}}),
                       "args[1].a.b: userdata")
end

-- repl.wrap_stdio(non-function) was accepted, and every later print then
-- failed calling it. Root cause: no argument check.
function TestIoSmall:test_wrap_stdio_took_a_non_function()
  local repl = require "async.repl"
  local plain_write = io.write
  lu.assertErrorMsgContains("bad argument #1 to 'wrap_stdio' (function expected, got number)",
                            repl.wrap_stdio, 42, function() end)
  lu.assertErrorMsgContains("bad argument #2 to 'wrap_stdio' (function expected, got nil)",
                            repl.wrap_stdio, function() end)
  lu.assertErrorMsgContains("bad argument #1 to 'wrap_stdio' (function expected, got nil)",
                            repl.wrap_stdio)
  lu.assertIs(io.write, plain_write)       -- nothing was wrapped
  io.stdout:write("")                      -- and writing still works
end

support.run(...)
