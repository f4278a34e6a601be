-- tests/test_stream.lua: the Stream reader/writer shared by TCP, unix
-- sockets, pipes and stdio: reads of every kind, EOF, limits, partial
-- data, writes with backpressure, drain, shutdown, close, abort, and
-- cancellation at every point a stream call waits.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"
local io_ = require "iosupport"

local pair = io_.pair

local function closed_both(a, b)
  a:close()
  b:close()
end

-- Runs fn(...) in a task and lets it reach its first wait.
local function started(fn, ...)
  local t = async.spawn(fn, ...)
  async.sleep(0)
  return t
end

local function assert_ioerror(err, code, op)
  lu.assertEquals(getmetatable(err), async.IOError, tostring(err))
  lu.assertEquals(err.code, code)
  if op then lu.assertEquals(err.op, op) end
end

TestStreamRead = support.suite {}

function TestStreamRead:test_read_returns_what_is_there_up_to_n()
  local a, b = pair()
  a:write("hello world")
  lu.assertEquals(b:read(5), "hello")
  lu.assertEquals(b:read(), " world")
  closed_both(a, b)
end

function TestStreamRead:test_read_waits_for_data()
  local a, b = pair()
  local t = started(b.read, b)
  lu.assertEquals(t:state(), "waiting")
  a:write("x")
  lu.assertEquals(t:await(), "x")
  closed_both(a, b)
end

function TestStreamRead:test_eof_returns_nil_every_time()
  local a, b = pair()
  a:write("last")
  a:close()
  lu.assertEquals(b:read(), "last")
  lu.assertNil(b:read())
  lu.assertNil(b:read())
  lu.assertNil(b:read_line())
  lu.assertNil(b:read_exactly(3))
  lu.assertNil(b:read_until("x"))
  lu.assertEquals(b:read_all(), "")
  b:close()
end

function TestStreamRead:test_read_line_strips_newline_and_crlf()
  local a, b = pair()
  a:write("one\ntwo\r\n\nlast")
  a:shutdown()
  lu.assertEquals(b:read_line(), "one")
  lu.assertEquals(b:read_line(), "two")
  lu.assertEquals(b:read_line(), "")
  lu.assertEquals(b:read_line(), "last")  -- a last line without "\n"
  lu.assertNil(b:read_line())
  closed_both(a, b)
end

function TestStreamRead:test_read_line_split_across_many_writes()
  local a, b = pair()
  local t = started(b.read_line, b)
  for c in ("a long line, one byte at a time"):gmatch(".") do
    a:write(c)
    async.sleep(0.001)                   -- let each byte arrive on its own
  end
  lu.assertEquals(t:state(), "waiting")
  a:write("\nrest")
  lu.assertEquals(t:await(), "a long line, one byte at a time")
  lu.assertEquals(b:read(), "rest")
  closed_both(a, b)
end

function TestStreamRead:test_lines_iterator()
  local a, b = pair()
  a:write("1\n2\n3\n")
  a:close()
  local got = {}
  for line in b:lines() do got[#got + 1] = line end
  lu.assertEquals(got, {"1", "2", "3"})
  b:close()
end

function TestStreamRead:test_read_line_limit_overrun_keeps_the_data()
  local a, b = pair()
  a:write(("x"):rep(100) .. "\n")
  local ok, err = pcall(b.read_line, b, 10)
  lu.assertFalse(ok)
  assert_ioerror(err, "ELIMIT", "read_line")
  lu.assertEquals(b:read_exactly(101), ("x"):rep(100) .. "\n")
  closed_both(a, b)
end

function TestStreamRead:test_read_until_includes_separator()
  local a, b = pair()
  a:write("GET / HTTP/1.0\r\nHost: x\r\n\r\nbody")
  lu.assertEquals(b:read_until("\r\n\r\n"), "GET / HTTP/1.0\r\nHost: x\r\n\r\n")
  lu.assertEquals(b:read(), "body")
  closed_both(a, b)
end

function TestStreamRead:test_read_until_separator_split_between_writes()
  local a, b = pair()
  local t = started(b.read_until, b, "END")
  a:write("abcE")
  async.sleep(0.005)
  a:write("N")
  async.sleep(0.005)
  lu.assertEquals(t:state(), "waiting")
  a:write("Dtail")
  lu.assertEquals(t:await(), "abcEND")
  lu.assertEquals(b:read(), "tail")
  closed_both(a, b)
end

function TestStreamRead:test_read_until_overrun_raises()
  local a, b = pair()
  local t = started(b.read_until, b, "\n", 1000)
  a:write(("y"):rep(2000))
  local ok, err = pcall(t.await, t)
  lu.assertFalse(ok)
  assert_ioerror(err, "ELIMIT", "read_until")
  lu.assertTrue(err.buffered >= 1000)
  closed_both(a, b)
end

function TestStreamRead:test_read_until_incomplete_raises_with_partial()
  local a, b = pair()
  a:write("no separator here")
  a:close()
  local ok, err = pcall(b.read_until, b, "\n\n")
  lu.assertFalse(ok)
  assert_ioerror(err, "EOF", "read_until")
  lu.assertEquals(err.partial, "no separator here")
  lu.assertNil(b:read())
  b:close()
end

function TestStreamRead:test_read_exactly_across_partial_writes()
  local a, b = pair()
  local t = started(b.read_exactly, b, 10)
  for i = 1, 9 do
    a:write(tostring(i))
    async.sleep(0.001)
  end
  lu.assertEquals(t:state(), "waiting")
  a:write("0X")
  lu.assertEquals(t:await(), "1234567890")
  lu.assertEquals(b:read_exactly(0), "")
  lu.assertEquals(b:read(), "X")
  closed_both(a, b)
end

function TestStreamRead:test_read_exactly_incomplete_raises_with_partial()
  local a, b = pair()
  a:write("abc")
  a:close()
  local ok, err = pcall(b.read_exactly, b, 10)
  lu.assertFalse(ok)
  assert_ioerror(err, "EOF", "read_exactly")
  lu.assertEquals(err.partial, "abc")
  lu.assertStrContains(tostring(err), "after 3 of 10 bytes")
  lu.assertNil(b:read_exactly(1))
  b:close()
end

function TestStreamRead:test_read_all()
  local a, b = pair()
  local t = started(b.read_all, b)
  a:write("part 1, ")
  a:write("part 2")
  a:shutdown()
  lu.assertEquals(t:await(), "part 1, part 2")
  closed_both(a, b)
end

function TestStreamRead:test_one_byte_payloads()
  local a, b = pair()
  for i = 1, 200 do
    local c = string.char(i % 256)
    a:write(c)
    lu.assertEquals(b:read(1), c)
  end
  closed_both(a, b)
end

function TestStreamRead:test_ten_megabytes_each_way()
  local a, b = pair()
  local chunk = {}
  for i = 1, 1024 do chunk[i] = string.char(i % 251) end
  local block = table.concat(chunk):rep(1024)  -- 1 MiB, not repetitive at 1 KiB
  local payload = block:rep(10)
  local echo = async.spawn(function()
    while true do
      local d = b:read()
      if not d then break end
      b:write(d)
    end
    b:shutdown()
  end)
  local writer = async.spawn(function() a:write(payload); a:shutdown() end)
  local back = a:read_all()
  writer:await()
  echo:await()
  lu.assertEquals(#back, #payload)
  lu.assertTrue(back == payload)
  closed_both(a, b)
end

function TestStreamRead:test_two_readers_at_once_is_an_error()
  local a, b = pair()
  local t = started(b.read, b)
  local ok, err = pcall(b.read, b)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "another task is already reading")
  a:write("z")
  lu.assertEquals(t:await(), "z")
  closed_both(a, b)
end

function TestStreamRead:test_bad_arguments()
  local a, b = pair()
  lu.assertErrorMsgContains("positive number of bytes", b.read, b, 0)
  lu.assertErrorMsgContains("number", b.read_exactly, b, "x")
  lu.assertErrorMsgContains("must be a number of bytes", b.read_exactly, b, -1)
  lu.assertErrorMsgContains("separator is empty", b.read_until, b, "")
  lu.assertErrorMsgContains("string expected", b.write, b)
  lu.assertErrorMsgContains("string expected", b.write, b, {})
  closed_both(a, b)
end

function TestStreamRead:test_read_outside_a_task()
  local a, b = pair()
  local f = async.future()
  async.call_soon(function() f:resolve(pcall(b.read, b)) end)
  local ok, err = f:await()
  lu.assertFalse(ok)
  lu.assertStrContains(err, "read: not inside a task")
  closed_both(a, b)
end

function TestStreamRead:test_read_buffer_limit_holds_memory_bounded()
  local a, b = pair()
  b:set_read_buffer(4096)
  lu.assertEquals(b:read_exactly(0), "")
  local writer = async.spawn(function() a:write(("m"):rep(1024 * 1024)) end)
  lu.assertEquals(#b:read(1), 1)          -- reading starts, then pauses
  for _ = 1, 20 do async.sleep(0.001) end
  local unread = b:buffered()
  lu.assertTrue(unread <= 4096 + 65536, "unread " .. unread)
  local got = 1
  while got < 1024 * 1024 do got = got + #b:read() end
  writer:await()
  closed_both(a, b)
end

TestStreamCancel = support.suite {}

-- Cancelling a read loses nothing: bytes that came while it waited are
-- there for the next read.
function TestStreamCancel:test_cancelled_read_exactly_keeps_bytes()
  local a, b = pair()
  local t = started(b.read_exactly, b, 10)
  a:write("12345")
  async.sleep(0.005)
  t:cancel()
  lu.assertTrue(async.is_cancelled(select(2, pcall(t.await, t))))
  a:write("67890")
  lu.assertEquals(b:read_exactly(10), "1234567890")
  closed_both(a, b)
end

function TestStreamCancel:test_cancel_every_read_kind_while_it_waits()
  local a, b = pair()
  local calls = {
    {b.read}, {b.read_line}, {b.read_exactly, 5}, {b.read_until, "--"}, {b.read_all},
  }
  for _, c in ipairs(calls) do
    local t = started(c[1], b, c[2])
    lu.assertEquals(t:state(), "waiting")
    t:cancel()
    local ok, err = pcall(t.await, t)
    lu.assertFalse(ok)
    lu.assertTrue(async.is_cancelled(err))
  end
  a:write("still--works\n")
  lu.assertEquals(b:read_until("--"), "still--")
  lu.assertEquals(b:read_line(), "works")
  closed_both(a, b)
end

function TestStreamCancel:test_read_timeout_then_data_still_arrives()
  local a, b = pair()
  local ok, err = pcall(async.timeout, 0.01, b.read_line, b)
  lu.assertFalse(ok)
  lu.assertTrue(async.is_timeout(err))
  a:write("late\n")
  lu.assertEquals(b:read_line(), "late")
  closed_both(a, b)
end

function TestStreamCancel:test_close_wakes_the_reader_with_an_error()
  local a, b = pair()
  local t = started(b.read, b)
  b:close()
  local ok, err = pcall(t.await, t)
  lu.assertFalse(ok)
  assert_ioerror(err, "ECANCELED", "read")
  a:close()
end

-- Found while writing the suite: a reader woken with data, then the
-- stream closed before the reader ran, must raise (not read freed memory).
function TestStreamCancel:test_close_between_wake_and_resume()
  local a, b = pair()
  local t = started(b.read, b)
  a:write("x")
  while b:buffered() == 0 and t:state() == "waiting" do async.sleep(0) end
  b:close()                               -- t is woken, not yet resumed
  local ok, err = pcall(t.await, t)
  lu.assertFalse(ok)
  assert_ioerror(err, "ECANCELED", "read")
  a:close()
end

TestStreamWrite = support.suite {}

function TestStreamWrite:test_write_many_values_and_chaining()
  local a, b = pair()
  lu.assertIs(a:write("a", 1, "b", 2.5), a)
  a:write("x"):write("y")
  a:shutdown()
  lu.assertEquals(b:read_all(), "a1b2.5xy")
  closed_both(a, b)
end

-- Several pieces go out in one writev, no string made of them; what the
-- kernel does not take (pieces larger than the socket buffer) is queued
-- from the byte where it stopped, and more pieces than one writev takes
-- are concatenated: the peer reads the same bytes in every case.
function TestStreamWrite:test_write_pieces_partly_taken_keep_their_order()
  local a, b = pair()
  local big = {}
  for i = 1, 3 do big[i] = string.rep(string.char(64 + i), 3 * 1024 * 1024 + i) end
  local many = {}
  for i = 1, 12 do many[i] = tostring(i) .. "," end
  local want = "<" .. table.concat(big) .. 7 .. ">" .. table.concat(many)
  local reader = async.spawn(b.read_exactly, b, #want)
  a:write("<", big[1], big[2], big[3], 7, ">")
  a:write(table.unpack(many))
  lu.assertEquals(reader:await() == want, true)
  closed_both(a, b)
end

-- A peer that never reads: the writer waits at the high-water mark, so
-- memory stays bounded; cancelling the waiting write queues nothing.
function TestStreamWrite:test_backpressure_against_a_peer_that_never_reads()
  local a, b = pair()
  a:set_write_buffer(256 * 1024, 64 * 1024)
  local chunk, written = ("w"):rep(64 * 1024), 0
  local writer = async.spawn(function()
    while true do
      a:write(chunk)
      written = written + #chunk
    end
  end)
  local last
  repeat                                   -- until the writer stops making progress
    last = written
    for _ = 1, 10 do async.sleep(0.001) end
  until written == last and writer:state() == "waiting"
  local _, queued = a:buffered()
  lu.assertTrue(queued < 256 * 1024 + #chunk, "queued " .. queued)
  writer:cancel()
  lu.assertTrue(async.is_cancelled(select(2, pcall(writer.await, writer))))
  local _, after = a:buffered()
  lu.assertTrue(after <= queued)           -- the cancelled write queued nothing
  -- Everything written arrives, and nothing else.
  local total = written
  local reader = async.spawn(function()
    local n = 0
    while n < total do n = n + #b:read() end
    return n
  end)
  a:drain()
  lu.assertEquals(reader:await(), total)
  closed_both(a, b)
end

function TestStreamWrite:test_waiting_writers_go_in_order()
  local a, b = pair()
  a:set_write_buffer(1, 0)
  local big = ("B"):rep(8 * 1024 * 1024) -- more than the kernel takes at once
  a:write(big)
  local _, queued = a:buffered()
  lu.assertTrue(queued > 0)
  local ts = {}
  for i = 1, 5 do ts[i] = started(a.write, a, "<" .. i .. ">") end
  for i = 1, 5 do lu.assertEquals(ts[i]:state(), "waiting") end
  local reader = async.spawn(function()
    lu.assertEquals(b:read_exactly(#big), big)
    return b:read_exactly(15)
  end)
  for i = 1, 5 do ts[i]:await() end
  lu.assertEquals(reader:await(), "<1><2><3><4><5>")
  closed_both(a, b)
end

function TestStreamWrite:test_drain_and_its_cancellation()
  local a, b = pair()
  a:write(("D"):rep(8 * 1024 * 1024))
  local t = started(a.drain, a)
  lu.assertEquals(t:state(), "waiting")
  t:cancel()
  lu.assertTrue(async.is_cancelled(select(2, pcall(t.await, t))))
  local d = started(a.drain, a)
  local n = 0
  while n < 8 * 1024 * 1024 do n = n + #b:read() end
  d:await()
  lu.assertEquals(select(2, a:buffered()), 0)
  closed_both(a, b)
end

function TestStreamWrite:test_shutdown_is_a_half_close()
  local a, b = pair()
  a:write("request")
  a:shutdown()
  lu.assertEquals(b:read_all(), "request")
  b:write("response")                     -- the other direction still works
  b:close()
  lu.assertEquals(a:read_all(), "response")
  local ok, err = pcall(a.write, a, "more")
  lu.assertFalse(ok)
  assert_ioerror(err, "EPIPE", "write")
  a:shutdown()                            -- again: harmless
  a:close()
end

function TestStreamWrite:test_cancelled_shutdown_still_ends_the_stream()
  local a, b = pair()
  a:write(("S"):rep(8 * 1024 * 1024))
  local t = started(a.shutdown, a)
  t:cancel()
  lu.assertTrue(async.is_cancelled(select(2, pcall(t.await, t))))
  lu.assertEquals(#b:read_all(), 8 * 1024 * 1024)
  closed_both(a, b)
end

-- close() with output still queued flushes it before the FIN.
function TestStreamWrite:test_close_flushes_queued_output()
  local a, b = pair()
  local payload = ("F"):rep(8 * 1024 * 1024)
  a:write(payload)
  lu.assertTrue(select(2, a:buffered()) > 0)
  a:close()
  lu.assertTrue(a:closed())
  lu.assertTrue(b:read_all() == payload)
  b:close()
end

function TestStreamWrite:test_abort_resets_the_peer()
  local a, b = pair()
  a:write("before")
  lu.assertEquals(b:read(), "before")
  a:abort()
  local ok, err = pcall(b.read, b)
  lu.assertFalse(ok)
  assert_ioerror(err, "ECONNRESET", "read")
  b:close()
end

-- A peer that resets mid-stream: the data it sent first is read, then
-- the reset is raised; writes fail too.
function TestStreamWrite:test_peer_resets_mid_stream()
  local a, b = pair()
  a:write("partial data")
  async.sleep(0.005)
  a:abort()
  async.sleep(0.005)
  lu.assertEquals(b:read(), "partial data")
  local ok, err = pcall(b.read, b)
  lu.assertFalse(ok)
  assert_ioerror(err, "ECONNRESET")
  lu.assertStrContains(tostring(err), "read 127.0.0.1:")
  ok, err = pcall(function()
    for _ = 1, 100 do b:write(("z"):rep(65536)) end
  end)
  lu.assertFalse(ok)
  lu.assertEquals(getmetatable(err), async.IOError)
  b:close()
end

function TestStreamWrite:test_write_after_peer_closed_raises_epipe_not_sigpipe()
  local a, b = pair()
  b:close()
  lu.assertNil(a:read())
  local ok, err = pcall(function()
    for _ = 1, 100 do a:write(("p"):rep(65536)); async.sleep(0.001) end
  end)
  lu.assertFalse(ok)
  lu.assertTrue(err.code == "EPIPE" or err.code == "ECONNRESET", tostring(err))
  a:close()
end

TestStreamLife = support.suite {}

function TestStreamLife:test_close_is_idempotent_and_methods_then_raise()
  local a, b = pair()
  b:close()
  b:close()
  lu.assertTrue(b:closed())
  lu.assertEquals(tostring(b), "Stream<closed>")
  lu.assertErrorMsgContains("closed stream", b.read, b)
  lu.assertErrorMsgContains("closed stream", b.write, b, "x")
  lu.assertErrorMsgContains("closed stream", b.peer, b)
  a:close()
end

function TestStreamLife:test_close_variable()
  local a, b
  do
    a, b = pair()
    local x <close> = a
    local y <close> = b
    lu.assertFalse(a:closed())
  end
  lu.assertTrue(a:closed())
  lu.assertTrue(b:closed())
end

function TestStreamLife:test_collected_streams_release_their_fds()
  local a, b = pair()                     -- libuv opens a few fds once, lazily
  closed_both(a, b)
  local before = io_.fds()
  for _ = 1, 20 do pair() end            -- never closed
  collectgarbage()
  collectgarbage()
  async.sleep(0)
  lu.assertEquals(io_.fds(), before)
end

function TestStreamLife:test_tostring_peer_address_kind()
  local a, b = pair()
  local ip, port = a:peer()
  lu.assertEquals(ip, "127.0.0.1")
  lu.assertEquals(select(2, b:address()), port)
  lu.assertEquals(select(2, a:address()), select(2, b:peer()))
  lu.assertEquals(tostring(a), "Stream<tcp 127.0.0.1:" .. port .. ">")
  lu.assertEquals(a:kind(), "tcp")
  a:set_nodelay(true)
  a:set_keepalive(true, 30)
  a:set_keepalive(false)
  closed_both(a, b)
end

TestStdio = support.suite({}, 20)

function TestStdio:test_stdin_pipe_lines_and_stdout()
  local r = support.sh("printf 'one\\ntwo\\n' | " .. support.shell_quote(support.LASYNC) ..
    [[ -e 'for l in async.stdin:lines() do async.stdout:write("<", l, ">\n") end print(async.stdin:read())']])
  lu.assertEquals(r.status, 0, r.stderr)
  lu.assertEquals(r.stdout, "<one>\n<two>\nnil\n")
end

function TestStdio:test_stdout_to_a_pipe_keeps_order_with_print()
  local r = support.sh(support.shell_quote(support.LASYNC) ..
    [[ -e 'for i = 1, 2000 do async.stdout:write(i, " "); print(i) end' | sort -n | tail -1]])
  lu.assertEquals(r.status, 0, r.stderr)
  lu.assertStrContains(r.stdout, "2000")
end

-- Files and devices cannot be polled: stdio redirected to them is read and
-- written synchronously, like C's stdio.
function TestStdio:test_stdin_and_stdout_redirected_to_files()
  local dir = io_.tmpdir()
  support.write_file(dir .. "/in", "first\nsecond\n")
  local r = support.sh(support.shell_quote(support.LASYNC) ..
    [[ -e 'local i, o = async.stdin, async.stdout
          assert(i:kind() == "file" and o:kind() == "file")
          for l in i:lines() do o:write(l:upper(), "\n") end
          o:write(tostring(i:read()))' <]] .. dir .. "/in >" .. dir .. "/out")
  lu.assertEquals(r.status, 0, r.stderr)
  lu.assertEquals(support.slurp(dir .. "/out"), "FIRST\nSECOND\nnil")
  r = support.sh(support.shell_quote(support.LASYNC) .. [[ -e 'print(async.stdin:read_all() == "")' </dev/null]])
  lu.assertEquals(r.stdout, "true\n")
  io_.rmtree(dir)
end

support.run(...)
