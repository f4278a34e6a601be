-- tests/test_fs_shared.lua: regressions of issue 13 in async.fs. One File
-- used by several tasks at once (operations run one at a time, in order);
-- FIFOs and device nodes (sequential writes, atomic writes refused); reads
-- sized by a float. Real files in a temporary directory.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"
local fs = async.fs

local dir

local function sh(cmd)
  local r = support.sh(cmd)
  lu.assertEquals(r.status, 0, cmd .. ": " .. r.stderr)
end

TestFsShared = support.suite({}, 20)

function TestFsShared:setUp() dir = fs.temp_dir("lasync-test.") end
function TestFsShared:tearDown() fs.remove(dir, {recursive = true}) end

-- Two tasks reading one File at once each got bytes once, and the rest of
-- the file came back twice. Root cause: a read took its offset from the
-- position before it waited and moved the position only when it returned,
-- so both reads started at offset 0 and both results were buffered.
function TestFsShared:test_concurrent_reads_of_one_file_duplicate_data()
  local p = dir .. "/data"
  fs.write_file(p, "0123456789abcdefghij")
  local f <close> = fs.open(p)
  local a = async.spawn(f.read, f, 10)
  local b = async.spawn(f.read, f, 10)
  lu.assertEquals(a:await(), "0123456789")
  lu.assertEquals(b:await(), "abcdefghij")
  lu.assertNil(f:read())                  -- nothing twice
  lu.assertEquals(f:seek(), 20)
end

-- Two tasks writing one File at once wrote at the same offset and one
-- write was lost (same root cause: the position moved only on return).
function TestFsShared:test_concurrent_writes_to_one_file_lose_data()
  local p = dir .. "/out"
  local f = fs.open(p, "w")
  local tasks = {}
  for i = 1, 8 do tasks[i] = async.spawn(f.write, f, ("%d"):format(i):rep(1000)) end
  async.gather(tasks)
  lu.assertEquals(f:seek(), 8000)
  f:close()
  local want = {}
  for i = 1, 8 do want[i] = ("%d"):format(i):rep(1000) end
  lu.assertEquals(fs.read_file(p), table.concat(want))  -- in the order called
end

-- Lines shared by several readers: each line goes to one reader, in order.
function TestFsShared:test_concurrent_read_lines_each_line_once()
  local p = dir .. "/lines"
  local lines = {}
  for i = 1, 200 do lines[i] = ("line %03d"):format(i) end
  fs.write_file(p, table.concat(lines, "\n") .. "\n")
  local f <close> = fs.open(p)
  local got, tasks = {}, {}
  for w = 1, 4 do
    tasks[w] = async.spawn(function()
      for line in f:lines() do got[#got + 1] = line end
    end)
  end
  async.gather(tasks)
  lu.assertEquals(got, lines)
end

-- A task cancelled while it waits for its turn leaves the line; the
-- others go on in order and the position moves only for what ran.
function TestFsShared:test_cancelled_waiter_leaves_the_line()
  local p = dir .. "/data"
  fs.write_file(p, "aaaabbbbcccc")
  local f <close> = fs.open(p)
  local a = async.spawn(f.read, f, 4)
  local b = async.spawn(f.read, f, 4)
  local c = async.spawn(f.read, f, 4)
  async.sleep(0)                          -- a reads; b and c wait in line
  b:cancel()
  lu.assertEquals(a:await(), "aaaa")
  lu.assertTrue(async.is_cancelled(select(2, pcall(b.await, b))))
  lu.assertEquals(c:await(), "bbbb")
  lu.assertEquals(f:read(), "cccc")
end

-- close waits for the operations called before it; later ones raise.
function TestFsShared:test_close_waits_for_the_operation_before_it()
  local p = dir .. "/data"
  fs.write_file(p, "0123456789")
  local f = fs.open(p)
  local t = async.spawn(f.read, f, 5)
  async.sleep(0)                          -- t's read runs on the thread pool
  local closer = async.spawn(f.close, f)
  async.sleep(0)
  lu.assertTrue(f:closed())               -- closing: no new operation starts
  lu.assertErrorMsgContains("closed file", f.read, f)
  lu.assertEquals(t:await(), "01234")     -- the read before it completed
  closer:await()
  lu.assertTrue(f:closed())
end

-- A close cancelled while it waits for the operation before it still
-- closes the descriptor once that operation is done.
function TestFsShared:test_cancelled_close_still_closes()
  local p = dir .. "/data"
  fs.write_file(p, "0123456789")
  local f = fs.open(p)
  local fd = require("async.core.fs").fileno(f.fd)
  local t = async.spawn(f.read, f, 5)
  async.sleep(0)
  local closer = async.spawn(f.close, f)
  async.sleep(0)
  closer:cancel()
  pcall(closer.await, closer)
  lu.assertEquals(t:await(), "01234")
  lu.assertNil(f.fd)
  local r = support.sh("ls -l /proc/" .. require("iosupport").pid .. "/fd/" .. fd)
  lu.assertNotEquals(r.status, 0)         -- descriptor gone
end

-- write_file and File:write on a FIFO failed with ESPIPE. Root cause:
-- every write was a pwrite at the File's position, and a FIFO has none.
-- Now a File that meets ESPIPE reads and writes in sequence.
function TestFsShared:test_write_file_on_a_fifo_fails_with_espipe()
  local fifo = dir .. "/fifo"
  sh("mkfifo " .. support.shell_quote(fifo))
  local data = ("0123456789abcdef"):rep(20000)    -- 320 KB: many pipe buffers
  local reader = async.spawn(fs.read_file, fifo)
  fs.write_file(fifo, data)
  lu.assertTrue(reader:await() == data)
  -- File:write and read_line, in sequence too
  reader = async.spawn(function()
    local got = {}
    for line in fs.lines(fifo) do got[#got + 1] = line end
    return got
  end)
  local f <close> = fs.open(fifo, "w")
  f:write("one\n"):write("two\n", "three")
  f:close()
  lu.assertEquals(reader:await(), {"one", "two", "three"})
  lu.assertEquals(fs.lstat(fifo).type, "fifo")
end

-- An atomic write renamed a regular file over a FIFO or a device node and
-- reported success (as root it replaced /dev/full). Root cause: the rename
-- replaces whatever is at the path; nothing looked at what was there.
function TestFsShared:test_atomic_write_replaced_fifos_and_device_nodes()
  local fifo, node, link = dir .. "/fifo", dir .. "/null", dir .. "/devlink"
  sh("mkfifo " .. support.shell_quote(fifo))
  sh("ln -s /dev/null " .. support.shell_quote(link))
  local has_node = support.sh("mknod " .. support.shell_quote(node) .. " c 1 3").status == 0
  local targets = {{fifo, "fifo"}, {link, "char"}}
  if has_node then targets[3] = {node, "char"} end
  for _, t in ipairs(targets) do
    local ok, err = pcall(fs.write_file, t[1], "x", {atomic = true})
    lu.assertFalse(ok, t[1])
    lu.assertEquals(getmetatable(err), fs.IOError)
    lu.assertEquals(err.code, "EINVAL")
    lu.assertEquals(err.op, "write_file")
    lu.assertEquals(err.path, t[1])
    lu.assertStrContains(tostring(err), "not a regular file (a " .. t[2] .. ")")
  end
  lu.assertEquals(fs.lstat(fifo).type, "fifo")
  lu.assertEquals(fs.lstat(link).type, "link")
  if has_node then lu.assertEquals(fs.lstat(node).type, "char") end
  local names = fs.list_dir(dir)              -- no temporary file left
  lu.assertEquals(#names, has_node and 3 or 2)
  -- a regular file and a missing path are still fine
  fs.write_file(dir .. "/f", "old")
  fs.write_file(dir .. "/f", "new", {atomic = true})
  fs.write_file(dir .. "/g", "new", {atomic = true})
  lu.assertEquals(fs.read_file(dir .. "/f") .. fs.read_file(dir .. "/g"), "newnew")
end

-- File:read(1e6) was refused where Stream:read(1e6) works. Root cause: the
-- size check wanted an integer subtype, and 1e6 is a float.
function TestFsShared:test_file_read_refused_a_float_size()
  local p = dir .. "/data"
  fs.write_file(p, ("x"):rep(100))
  local f <close> = fs.open(p)
  lu.assertEquals(f:read(1e6), ("x"):rep(100))
  f:seek("set")
  lu.assertEquals(f:read(10.0), ("x"):rep(10))
  lu.assertErrorMsgContains("positive number of bytes", f.read, f, 1.5)
  lu.assertErrorMsgContains("positive number of bytes", f.read, f, 0)
  lu.assertErrorMsgContains("positive number of bytes", f.read, f, 0 / 0)
end

support.run(...)
