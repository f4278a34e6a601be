-- tests/test_fs.lua: async.fs on real files in a temporary directory:
-- whole-file reads and writes (atomic too), File objects (read, lines,
-- write, seek), the directory calls, errors that carry the path, and
-- cancellation (nothing leaks, nothing is lost).
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"
local io_ = require "iosupport"
local fs = async.fs

local dir

local function assert_ioerror(err, code, op, path)
  lu.assertEquals(getmetatable(err), async.IOError, tostring(err))
  lu.assertEquals(err.code, code)
  if op then lu.assertEquals(err.op, op) end
  if path then lu.assertEquals(err.path, path) end
end

local function started(fn, ...)
  local t = async.spawn(fn, ...)
  async.sleep(0)
  return t
end

TestFs = support.suite({}, 20)

function TestFs:setUp() dir = fs.temp_dir("lasync-test.") end
function TestFs:tearDown() fs.remove(dir, {recursive = true}) end

function TestFs:test_write_and_read_a_file()
  local p = dir .. "/f.txt"
  fs.write_file(p, "hello\n")
  lu.assertEquals(fs.read_file(p), "hello\n")
  fs.write_file(p, "more\n", {append = true})
  lu.assertEquals(fs.read_file(p), "hello\nmore\n")
  fs.write_file(p, "")
  lu.assertEquals(fs.read_file(p), "")
  lu.assertEquals(support.slurp(p), "")
end

function TestFs:test_ten_megabytes()
  local p = dir .. "/big"
  local block = {}
  for i = 1, 4096 do block[i] = string.char(i % 256) end
  local data = table.concat(block):rep(2560)    -- 10 MiB
  fs.write_file(p, data)
  local back = fs.read_file(p)
  lu.assertEquals(#back, #data)
  lu.assertTrue(back == data)
  lu.assertEquals(fs.stat(p).size, #data)
end

function TestFs:test_errors_carry_the_path()
  local p = dir .. "/missing/file"
  local ok, err = pcall(fs.read_file, p)
  lu.assertFalse(ok)
  assert_ioerror(err, "ENOENT", "open", p)
  lu.assertEquals(tostring(err), "open " .. p .. ": no such file or directory (ENOENT)")
  ok, err = pcall(fs.mkdir, dir)
  assert_ioerror(err, "EEXIST", "mkdir", dir)
  ok, err = pcall(fs.list_dir, p)
  assert_ioerror(err, "ENOENT", "list_dir", p)
  ok, err = pcall(fs.rename, p, dir .. "/x")
  assert_ioerror(err, "ENOENT", "rename", p .. " -> " .. dir .. "/x")
  ok, err = pcall(fs.remove, p)
  assert_ioerror(err, "ENOENT", "lstat", p)
  lu.assertErrorMsgContains("path expected", fs.read_file, nil)
  lu.assertErrorMsgContains("path expected", fs.stat, "")
  lu.assertErrorMsgContains("invalid option 'rw'", fs.open, dir .. "/x", "rw")
  lu.assertErrorMsgContains("options table expected", fs.mkdir, dir .. "/y", true)
end

-- An atomic write never shows a reader part of the new contents; when it
-- fails or is cancelled the temporary file is gone and the old contents stay.
function TestFs:test_atomic_write()
  local p = dir .. "/config"
  fs.write_file(p, "old")
  fs.write_file(p, "new contents", {atomic = true})
  lu.assertEquals(fs.read_file(p), "new contents")
  lu.assertEquals(fs.list_dir(dir), {"config"})
  -- cancelled at each point it can wait
  for turns = 0, 6 do
    local t = async.spawn(fs.write_file, p, ("x"):rep(1 << 20), {atomic = true})
    for _ = 1, turns do async.sleep(0) end
    t:cancel()
    local ok = pcall(t.await, t)
    local now = fs.read_file(p)
    lu.assertTrue(now == "new contents" or (ok and #now == 1 << 20), "turns " .. turns)
    io_.eventually(function() return #fs.list_dir(dir) == 1 end, "temporary file removed")
    if ok then fs.write_file(p, "new contents") end
  end
  -- refused: the target is a directory (only a regular file is replaced)
  fs.mkdir(dir .. "/sub")
  local ok, err = pcall(fs.write_file, dir .. "/sub", "x", {atomic = true})
  lu.assertFalse(ok)
  lu.assertEquals(err.op, "write_file")
  lu.assertEquals(err.code, "EINVAL")
  lu.assertEquals(fs.list_dir(dir), {"config", "sub"})
end

function TestFs:test_file_read_write_seek()
  local f <close> = fs.open(dir .. "/rw", "w+")
  lu.assertIs(f:write("hello ", 42, " world"), f)
  lu.assertEquals(f:seek(), 14)
  lu.assertEquals(f:seek("set"), 0)
  lu.assertEquals(f:read(5), "hello")
  lu.assertEquals(f:seek(), 5)
  lu.assertEquals(f:read_all(), " 42 world")
  lu.assertNil(f:read())
  lu.assertEquals(f:seek("end", -5), 9)
  lu.assertEquals(f:read(), "world")
  f:seek("set", 6)
  f:write("XX")                           -- overwrites in place
  f:seek("set")
  lu.assertEquals(f:read_all(), "hello XX world")
  lu.assertEquals(f:stat().size, 14)
  f:truncate(5)
  lu.assertEquals(fs.read_file(dir .. "/rw"), "hello")
  lu.assertErrorMsgContains("before the start", f.seek, f, "set", -1)
  lu.assertErrorMsgContains("\"set\", \"cur\" or \"end\"", f.seek, f, "middle")
end

function TestFs:test_append_mode()
  fs.write_file(dir .. "/log", "1\n")
  local f = fs.open(dir .. "/log", "a")
  f:write("2\n")
  f:write("3\n")
  f:close()
  lu.assertEquals(fs.read_file(dir .. "/log"), "1\n2\n3\n")
end

function TestFs:test_lines()
  local p = dir .. "/lines"
  local want = {}
  for i = 1, 5000 do want[i] = ("line %d %s"):format(i, ("."):rep(i % 50)) end
  fs.write_file(p, table.concat(want, "\n") .. "\r\nlast without newline")
  want[#want] = want[#want]               -- the "\r\n" is stripped
  want[#want + 1] = "last without newline"
  local got = {}
  for line in fs.lines(p) do got[#got + 1] = line end
  lu.assertEquals(#got, #want)
  lu.assertEquals(got, want)
  local f <close> = fs.open(p)
  lu.assertEquals(f:read_line(), "line 1 .")
  lu.assertEquals(f:read(4), "line")       -- read and read_line share the buffer
  lu.assertEquals(f:read_line(), " 2 ..")
  local n = 2
  for _ in f:lines() do n = n + 1 end
  lu.assertEquals(n, #want)
  lu.assertNil(f:read_line())
end

function TestFs:test_lines_loop_closes_the_file_on_break()
  local p = dir .. "/few"
  fs.write_file(p, "a\nb\nc\n")
  local before = io_.fds()
  for line in fs.lines(p) do
    if line == "b" then break end
  end
  lu.assertEquals(io_.fds(), before)
end

function TestFs:test_close_is_idempotent_and_then_methods_raise()
  local f = fs.open(dir .. "/c", "w")
  f:close()
  f:close()
  lu.assertTrue(f:closed())
  lu.assertStrContains(tostring(f), "closed")
  lu.assertErrorMsgContains("closed file", f.write, f, "x")
  lu.assertErrorMsgContains("closed file", f.read, f)
end

function TestFs:test_forgotten_files_are_closed_by_the_collector()
  fs.write_file(dir .. "/g", "x")
  local before = io_.fds()
  for _ = 1, 10 do fs.open(dir .. "/g") end
  lu.assertEquals(io_.fds(), before)      -- fds() collects garbage first
end

function TestFs:test_directories()
  fs.mkdir(dir .. "/a/b/c", {recursive = true})
  fs.mkdir(dir .. "/a/b/c", {recursive = true})  -- exists: fine
  fs.write_file(dir .. "/a/b/c/f", "deep")
  fs.write_file(dir .. "/a/z", "")
  fs.write_file(dir .. "/a/m", "")
  lu.assertEquals(fs.list_dir(dir .. "/a"), {"b", "m", "z"})
  local st = fs.stat(dir .. "/a/b/c/f")
  lu.assertEquals(st.type, "file")
  lu.assertEquals(st.size, 4)
  lu.assertTrue(st.mtime > 1e9)
  lu.assertEquals(fs.stat(dir .. "/a").type, "directory")
  lu.assertTrue(fs.exists(dir .. "/a/z"))
  lu.assertFalse(fs.exists(dir .. "/a/nothing"))
  lu.assertFalse(fs.exists(dir .. "/a/z/under-a-file"))
  local ok, err = pcall(fs.remove, dir .. "/a")
  lu.assertFalse(ok)
  lu.assertEquals(err.code, "ENOTEMPTY")
  fs.rename(dir .. "/a/z", dir .. "/a/y")
  lu.assertEquals(fs.list_dir(dir .. "/a"), {"b", "m", "y"})
  fs.remove(dir .. "/a/m")
  fs.remove(dir .. "/a", {recursive = true})
  lu.assertFalse(fs.exists(dir .. "/a"))
  local ok2, err2 = pcall(fs.mkdir, dir .. "/p/q")
  lu.assertFalse(ok2)
  assert_ioerror(err2, "ENOENT", "mkdir")
end

function TestFs:test_links_are_not_followed_by_remove()
  fs.mkdir(dir .. "/keep")
  fs.write_file(dir .. "/keep/precious", "!")
  fs.mkdir(dir .. "/tree")
  os.execute("ln -s " .. dir .. "/keep " .. dir .. "/tree/link")
  lu.assertEquals(fs.lstat(dir .. "/tree/link").type, "link")
  fs.remove(dir .. "/tree", {recursive = true})
  lu.assertEquals(fs.read_file(dir .. "/keep/precious"), "!")
end

function TestFs:test_temp_dir()
  local t = fs.temp_dir("mine-")
  lu.assertStrContains(t, "/mine-")
  lu.assertEquals(fs.stat(t).mode & 0x1ff, 0x1c0)  -- 0700: the user's alone
  fs.remove(t)
  lu.assertErrorMsgContains("prefix without '/'", fs.temp_dir, "a/b")
end

-- A cancelled read consumes nothing: the next read gets the same bytes.
function TestFs:test_cancelled_reads_lose_nothing()
  local p = dir .. "/data"
  fs.write_file(p, "0123456789")
  local f <close> = fs.open(p)
  for _ = 1, 5 do
    local t = started(f.read, f, 4)
    t:cancel()
    pcall(t.await, t)
  end
  lu.assertEquals(f:read(4), "0123")
  lu.assertEquals(f:read_line(), "456789")
end

-- Opens cancelled at once or while they run on the thread pool leave no
-- descriptor behind (an open that finished for nobody is closed).
function TestFs:test_cancelled_opens_leak_nothing()
  fs.write_file(dir .. "/o", "x")
  local before = io_.fds()
  for i = 1, 40 do
    local t = async.spawn(fs.open, dir .. "/o")
    for _ = 1, i % 4 do async.sleep(0) end
    t:cancel()
    local ok, f = pcall(t.await, t)
    if ok then f:close() end
  end
  io_.eventually(function() return io_.fds() == before end, "all descriptors closed")
end

function TestFs:test_timeout_composes()
  local ok, err = pcall(async.timeout, 0, fs.read_file, dir .. "/none")
  lu.assertFalse(ok)
  lu.assertTrue(async.is_timeout(err))
end

function TestFs:test_many_files_at_once()
  local tasks = {}
  for i = 1, 50 do
    tasks[i] = async.spawn(function()
      local p = ("%s/n%d"):format(dir, i)
      fs.write_file(p, ("%d"):format(i * i))
      return tonumber(fs.read_file(p))
    end)
  end
  local r = async.gather(tasks)
  for i = 1, 50 do lu.assertEquals(r[i], i * i) end
  lu.assertEquals(#fs.list_dir(dir), 50)
end

support.run(...)
