-- tests/test_fs_cancel.lua: a File operation cancelled while its request
-- already runs on libuv's thread pool (uv_cancel cannot withdraw it).
--
-- The bug: the task got Cancelled at once and the File's lock was released
-- with it, so a close() right after closed the descriptor while the pool
-- request still used it. The number was then free: the next open got it,
-- and a request that had not yet reached its system call read or wrote
-- that other file. Root cause: a File's busy state ended with its task's
-- wait, not with the request's callback. Now the descriptor is an Fd that
-- counts its requests on the pool; operations and close wait (settle)
-- until the count is 0, and a close that cannot wait (cancelled, __gc) is
-- done by the last callback.
--
-- Each scenario runs in a child lasync with a pool of 2 threads: the
-- blocked request holds one, so the other runs every later request in the
-- order queued, which makes "has the close run yet?" a fact, not a race.
-- A request blocks for sure on a FIFO (an empty one for a read, a full one
-- for a write); the test ends it from a shell, outside the pool.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"
local fs = async.fs

local dir

TestFsCancel = support.suite({}, 120)

function TestFsCancel:setUp()
  dir = fs.temp_dir("lasync-test.")
  local r = support.sh("mkfifo " .. support.shell_quote(dir .. "/fifo"))
  lu.assertEquals(r.status, 0, r.stderr)
end
function TestFsCancel:tearDown() fs.remove(dir, {recursive = true}) end

-- The child: opens the FIFO as File `a` (read-write, so neither the open
-- nor a writer waits), blocks one request of `a` on the pool, cancels its
-- task, then runs the scenario named by arg[2].
local CHILD = [==[
local fs = async.fs
local fileno = require("async.core.fs").fileno
local dir, scenario = arg[1], arg[2]
local fifo = dir .. "/fifo"
local function nfds() return #fs.list_dir("/proc/self/fd") end
local function sh(cmd) assert(os.execute(cmd), cmd) end
local function has_fd(n) return fs.exists("/proc/self/fd/" .. n) end

local before = nfds()
local a = fs.open(fifo, "r+")
a:write("x")                  -- pwrite: ESPIPE; `a` reads and writes in sequence now
assert(a:read(1) == "x")
local na = fileno(a.fd)

-- Runs fn(...) in a task, waits until its request runs on the pool (cannot
-- be withdrawn), cancels the task: it must end at once, with Cancelled.
local function cancel_running(fn, ...)
  local t = async.spawn(fn, ...)
  async.sleep(0)              -- t's request is queued
  fs.stat(dir)                -- queued after it and done: t's request has left the queue
  t:cancel()
  local ok, err = pcall(t.await, t)
  assert(not ok and t:cancelled(), "the cancelled task ends at once with Cancelled: " .. tostring(err))
end

if scenario == "write" then
  cancel_running(a.write, a, ("w"):rep(100000))  -- more than a pipe holds: blocks
elseif scenario == "close_scope" then   -- as fs.read_file reads
  cancel_running(function() local f <close> = a return f:read(10) end)
  assert(a:closed() and has_fd(na), "closing is left to the request's callback")
else
  cancel_running(a.read, a, 10)                  -- the FIFO is empty: blocks
end

-- Ends the blocked request from outside the pool.
local function unblock()
  if scenario == "write" then sh("head -c 100000 " .. fifo .. " >" .. dir .. "/drained")
  else sh("printf first >" .. fifo) end
end

if scenario == "read" or scenario == "write" then
  local closer = async.spawn(a.close, a)
  async.sleep(0)
  fs.stat(dir)                -- the free thread has run whatever the closer queued
  assert(a:closed(), "closed() is true from the call on")
  assert(not closer:done(), "close waits for the cancelled request")
  local b = fs.open(dir .. "/b", "w+")
  assert(fileno(b.fd) ~= na, "descriptor number given to another open while a request used it")
  b:write("B")
  unblock()
  closer:await()
  assert(not has_fd(na), "closed once the request called back")
  b:seek("set")
  assert(b:read_all() == "B", "the other file was touched")
  b:close()
  if scenario == "write" then
    local got = fs.read_file(dir .. "/drained")
    assert(#got == 100000 and not got:find("[^w]"), "the FIFO got the write")
  end
elseif scenario == "later" then
  local t3 = async.spawn(a.read, a, 10)
  async.sleep(0)
  unblock()
  local got = async.wait_for(30, t3)
  assert(got == "first", "the next read gets what the cancelled one consumed: " .. tostring(got))
  a:close()
elseif scenario == "close_cancelled" or scenario == "gc" or scenario == "close_scope" then
  local afd = a.fd
  if scenario == "close_scope" then
    afd = nil
  elseif scenario == "gc" then
    a = nil
    collectgarbage()
    collectgarbage()
  else
    local closer = async.spawn(a.close, a)
    async.sleep(0)
    closer:cancel()
    assert(not pcall(closer.await, closer))
    assert(a:closed())
  end
  assert(has_fd(na), "closed under the running request")
  unblock()
  local n = 0
  while has_fd(na) do         -- each probe is a pool round trip; the callback closes it
    n = n + 1
    assert(n < 100000, "never closed")
  end
  assert(afd == nil or fileno(afd) == nil)
end
assert(nfds() == before, "descriptors leaked: " .. nfds() - before)
print("ok " .. scenario)
]==]

local function child(scenario)
  local script = dir .. "/child.lua"
  support.write_file(script, CHILD)
  local r = support.sh("UV_THREADPOOL_SIZE=2 timeout 60 " .. support.shell_quote(support.LASYNC) .. " " ..
                       support.shell_quote(script) .. " " .. support.shell_quote(dir) .. " " .. scenario ..
                       " </dev/null")
  lu.assertEquals(r.status, 0, r.stdout .. r.stderr)
  lu.assertEquals(r.stdout, "ok " .. scenario .. "\n")
end

-- The bug itself: a read cancelled while blocked in read(2), then close():
-- the close ran at once and the next open got the same descriptor number.
function TestFsCancel:test_close_after_cancelled_read_frees_the_descriptor_under_the_request()
  child("read")
end

-- The same with a write blocked on a full FIFO: the data must reach the
-- FIFO, and the file opened meanwhile stays as written.
function TestFsCancel:test_close_after_cancelled_write_frees_the_descriptor_under_the_request()
  child("write")
end

-- A read after the cancelled one ran beside it (the lock was free), and
-- the bytes the cancelled read consumed from the FIFO were lost. Now the
-- next read waits for it and gets those bytes.
function TestFsCancel:test_read_after_cancelled_fifo_read_runs_beside_it_and_loses_data()
  child("later")
end

-- A read cancelled inside a <close> scope (as in fs.read_file of a FIFO):
-- with the first fix, the scope's close waited for the running request,
-- so the Cancelled came back only once the FIFO got data. A close while
-- an error unwinds does not wait: the request's callback closes it.
function TestFsCancel:test_cancelled_read_in_close_scope_returns_at_once_and_closes_later()
  child("close_scope")
end

-- A close cancelled while it waits for the running request, and a File
-- collected meanwhile, leave the closing to the request's callback: the
-- descriptor stays open under it and is closed after, never leaked.
function TestFsCancel:test_cancelled_close_closes_under_the_running_request()
  child("close_cancelled")
end

function TestFsCancel:test_collected_file_closes_under_the_running_request()
  child("gc")
end

-- The Fd of a File is internal but reachable: misuse raises, never crashes.
function TestFsCancel:test_fd_misuse()
  local core = require "async.core.fs"
  local p = dir .. "/f"
  fs.write_file(p, "abc")
  local f = fs.open(p)
  local fd = f.fd
  lu.assertStrContains(tostring(fd), "fs.Fd (")
  local mt = getmetatable(fd)
  for _, v in ipairs({1, "x", {}, f, 0 / 0}) do
    lu.assertError(mt.__gc, v)
    lu.assertError(mt.__tostring, v)
    lu.assertError(core.read, v, 1, 0)
    lu.assertError(core.settle, v)
    lu.assertError(core.fileno, v)
  end
  lu.assertErrorMsgContains("File expected", f.close, 5)
  lu.assertErrorMsgContains("File expected", f.__close, {}, "error")
  lu.assertErrorMsgContains("File expected", f.__close, 5, "error")
  f:close()
  lu.assertEquals(tostring(fd), "fs.Fd (closed)")
  lu.assertNil(core.fileno(fd))
  lu.assertErrorMsgContains("closed file", core.read, fd, 1, 0)
  lu.assertErrorMsgContains("closed file", core.settle, fd)
  mt.__gc(fd)                                   -- idempotent
end

support.run(...)
