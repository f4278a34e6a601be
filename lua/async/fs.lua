-- async.fs: files and directories. Every call runs on libuv's thread pool
-- (async.core.fs, one C function per system call) and suspends only the
-- calling task. This file holds the policy: File objects with a read
-- buffer for lines, whole-file reads and writes (atomic: a temporary file
-- renamed over the target), recursive mkdir and remove, temp dirs.
--
-- Files read and write at explicit offsets, so a cancelled read consumes
-- nothing (the next read gets the same bytes) and a cancelled write does
-- not move the position. A File runs one operation at a time, in order;
-- files with no position (FIFOs) are read and written in sequence.
--
-- A cancelled operation returns at once, but its request may still run on
-- the thread pool with the descriptor: the File stays busy until it calls
-- back. Each operation and close first settles (core.settle waits for such
-- a request); the descriptor (a core Fd) is closed only once none runs, so
-- its number cannot go to another open while a request still uses it.
local core = require "async.core.fs"
local check = require "async.internal.check"
local new_lock = require("async.sync").lock
local current = require("async.core").current

local type, error, pcall, tostring, format = type, error, pcall, tostring, string.format
local getmetatable, setmetatable, math_type = getmetatable, setmetatable, math.type
local concat, sort = table.concat, table.sort

local IOError = core.IOError
local CHUNK = 65536
local fs = {IOError = IOError}

local argerror = check.argerror

local function check_path(p, i, what)
  if type(p) ~= "string" or p == "" then
    argerror(i, what, "path expected, got " .. (p == "" and "an empty string" or type(p)))
  end
end

local check_opts = check.opts

local function is_code(err, ...)
  if getmetatable(err) ~= IOError then return false end
  for i = 1, select("#", ...) do if err.code == select(i, ...) then return true end end
  return false
end

------------------------------------------------------------------- files

local File = {}
File.__index = File
File.__name = "lasync.File"

local function check_open(f, what)
  if getmetatable(f) ~= File then argerror(1, what, "File expected, got " .. type(f)) end
  if f.fd == nil or f.closing then error(what .. ": attempt to use a closed file", 3) end
  return f.fd
end

-- fs.open(path [, mode [, perm]]): a File. mode as io.open: "r" (default),
-- "w", "a", "r+", "w+", "a+", and "wx" / "w+x" (fail if it exists).
function fs.open(path, mode, perm)
  check_path(path, 1, "open")
  if mode ~= nil and type(mode) ~= "string" then argerror(2, "open", "mode string expected") end
  if perm ~= nil and math_type(perm) ~= "integer" then argerror(3, "open", "permissions (integer) expected") end
  local fd = core.open(path, mode or "r", perm)
  return setmetatable({fd = fd, path = path, pos = 0, buf = "", bi = 1, lock = new_lock(),
                       append = (mode or ""):sub(1, 1) == "a"}, File)
end

-- Closes the descriptor of a File whose close was cancelled while it
-- waited for the operations before it, once the last of them is done.
local function close_late(f)
  local fd = f.fd
  f.fd, f.close_later = nil, nil
  if fd then core.close_now(fd) end
end

-- Runs op(f, ...) as the File's only operation. The position moves when
-- a read or write returns, so two at once would both read (or write) at
-- the same offset: each waits in the File's lock, in the order called.
-- Operations queued before a close still run; later ones raise "closed".
-- A read in sequence cancelled while it ran consumed bytes: settle hands
-- them over, and they are read first.
local function settled(f, op, ...)
  local kept = core.settle(f.fd)
  if kept then
    f.buf = f.bi <= #f.buf and f.buf:sub(f.bi) .. kept or kept
    f.bi = 1
  end
  return op(f, ...)
end

local function serial(f, what, op, ...)
  check_open(f, what)
  if not current() then error(what .. ": not inside a task", 3) end
  local lock = f.lock
  lock:acquire()
  local ok, a, b = pcall(settled, f, op, ...)
  lock:release()
  if f.close_later and not lock:locked() then close_late(f) end
  if not ok then error(a, 0) end
  return a, b
end

-- pread/pwrite at the position. A FIFO (or another file with no position)
-- refuses them with ESPIPE; from then on the File reads and writes it in
-- sequence (a read on it cancelled while it runs consumes data: settle
-- gives it to the next read).
local function pread(f, n, off)
  if not f.sequential then
    local ok, data = pcall(core.read, f.fd, n, off, f.path)
    if ok then return data end
    if not is_code(data, "ESPIPE") then error(data, 0) end
    f.sequential = true
  end
  return core.read(f.fd, n, -1, f.path)
end

local function pwrite(f, data, off)
  if not f.sequential and off >= 0 then
    local ok, n = pcall(core.write, f.fd, data, off, f.path)
    if ok then return n end
    if not is_code(n, "ESPIPE") then error(n, 0) end
    f.sequential = true
  end
  return core.write(f.fd, data, -1, f.path)
end

local function unread(f) return #f.buf - f.bi + 1 end

-- Reads the next chunk into the buffer; false at the end of the file.
local function fill(f, want)
  local data = pread(f, want > CHUNK and want or CHUNK, f.pos + unread(f))
  if data == nil then return false end
  f.buf = unread(f) > 0 and f.buf:sub(f.bi) .. data or data
  f.bi = 1
  return true
end

local function take(f, n)
  local s = f.buf:sub(f.bi, f.bi + n - 1)
  f.bi = f.bi + n
  f.pos = f.pos + n
  if f.bi > #f.buf then f.buf, f.bi = "", 1 end
  return s
end

local function read_op(f, n)
  if unread(f) == 0 and not fill(f, n) then return nil end
  return take(f, n < unread(f) and n or unread(f))
end

-- f:read([n]): up to n bytes (default 65536); nil at the end. n may be a
-- float with an integral value (1e6), as for Stream:read.
function File:read(n)
  check_open(self, "read")
  if n ~= nil then
    local i = math_type(n) == "float" and math.tointeger(n) or n
    if math_type(i) ~= "integer" or i < 1 then argerror(1, "read", "positive number of bytes expected") end
    n = i
  end
  return serial(self, "read", read_op, n or CHUNK)
end

local function read_line_op(f)
  local from = f.bi
  while true do
    local j = f.buf:find("\n", from, true)
    if j then
      local line = take(f, j - f.bi + 1)
      return line:sub(-2) == "\r\n" and line:sub(1, -3) or line:sub(1, -2)
    end
    from = #f.buf + 1 - f.bi + 1       -- resume after what was searched
    if not fill(f, CHUNK) then
      if unread(f) == 0 then return nil end
      return take(f, unread(f))
    end
  end
end

-- f:read_line(): the next line without "\n" (and "\r"); the last one even
-- without a "\n"; nil at the end.
function File:read_line() return serial(self, "read_line", read_line_op) end

function File:lines()
  check_open(self, "lines")
  return function() return self:read_line() end
end

local function read_all_op(f)
  local parts = {unread(f) > 0 and take(f, unread(f)) or nil}
  while true do
    local data = pread(f, 1 << 20, f.pos)
    if data == nil then return concat(parts) end
    parts[#parts + 1] = data
    f.pos = f.pos + #data
  end
end

-- f:read_all(): the rest of the file ("" at the end).
function File:read_all() return serial(self, "read_all", read_all_op) end

local function write_op(f, data)
  if unread(f) > 0 then f.buf, f.bi = "", 1 end   -- drop read-ahead
  local done = 0
  while done < #data do
    local chunk = done == 0 and data or data:sub(done + 1)
    local n = pwrite(f, chunk, f.append and -1 or f.pos)
    done = done + n
    if not f.append then f.pos = f.pos + n end
  end
  return f
end

-- f:write(...): writes the strings (or numbers) at the position (at the
-- end in append mode); returns the file.
function File:write(...)
  check_open(self, "write")
  local data
  if select("#", ...) == 1 then data = ... else data = concat({...}) end
  if math_type(data) then data = tostring(data) end
  if type(data) ~= "string" then argerror(1, "write", "string expected, got " .. type(data)) end
  return serial(self, "write", write_op, data)
end

local function seek_op(f, whence, offset)
  local base
  if whence == "set" then base = 0
  elseif whence == "cur" then base = f.pos
  else base = core.fstat(f.fd, f.path).size end
  if base + offset < 0 then error(format("seek: position %d is before the start of %s", base + offset, f.path), 0) end
  f.pos, f.buf, f.bi = base + offset, "", 1
  return f.pos
end

-- f:seek([whence [, offset]]) as Lua's file:seek: "set", "cur" (default)
-- or "end"; returns the new position.
function File:seek(whence, offset)
  check_open(self, "seek")
  whence, offset = whence or "cur", offset or 0
  if math_type(offset) ~= "integer" then argerror(2, "seek", "integer offset expected") end
  if whence ~= "set" and whence ~= "cur" and whence ~= "end" then
    argerror(1, "seek", "\"set\", \"cur\" or \"end\" expected, got " .. tostring(whence))
  end
  return serial(self, "seek", seek_op, whence, offset)
end

local function stat_op(f) return core.fstat(f.fd, f.path) end
local function sync_op(f) core.fsync(f.fd, f.path) return f end
local function truncate_op(f, size) core.truncate(f.fd, size, f.path) return f end

function File:stat() return serial(self, "stat", stat_op) end
function File:sync() return serial(self, "sync", sync_op) end
function File:truncate(size) return serial(self, "truncate", truncate_op, size or 0) end

-- f:close(): idempotent; later calls raise "closed" at once. It waits for
-- the operations called before it, and for the request of a cancelled one
-- that still runs, then closes. A close cancelled while it waits leaves the
-- closing to the last of them; one cancelled while the close itself runs
-- still closes.
function File:close()
  if getmetatable(self) ~= File then argerror(1, "close", "File expected, got " .. type(self)) end
  if self.fd == nil or self.closing then return end
  self.closing = true
  local lock = self.lock
  if lock:locked() then
    local ok, err = false, nil
    if current() then ok, err = pcall(lock.acquire, lock) end
    if not ok then                        -- the last one in line closes it
      if lock:locked() then self.close_later = true else close_late(self) end
      if err ~= nil then error(err, 0) end
      return
    end
    lock:release()
  end
  local fd = self.fd
  self.fd = nil
  local ok, err = pcall(core.settle, fd)
  if not ok then                          -- cancelled: the last request closes it
    core.close_now(fd)
    error(err, 0)
  end
  core.close(fd, self.path)
end

function File:closed() return self.fd == nil or self.closing == true end

-- <close> while an error unwinds (a read_file cancelled in its read): the
-- error goes on at once. The descriptor is closed without waiting: now if
-- nothing runs on it, else by the last operation queued or by the callback
-- of a cancelled one's request still on the pool.
function File:__close(err)
  if err == nil or getmetatable(self) ~= File or self.fd == nil or self.closing then
    return File.close(self)
  end
  self.closing = true
  if self.lock:locked() then self.close_later = true else close_late(self) end
end
function File:__gc() if self.fd then core.close_now(self.fd) self.fd = nil end end
function File:__tostring()
  return format("File<%s%s>", self.path, self:closed() and ", closed" or "")
end

-- fs.lines(path): for line in fs.lines(path) do ... end; the file is closed
-- when the loop ends, breaks or raises.
function fs.lines(path)
  check_path(path, 1, "lines")
  local f = fs.open(path)
  return function() return f:read_line() end, nil, nil, f
end

------------------------------------------------------------ whole files

-- fs.read_file(path): the file's contents.
function fs.read_file(path)
  check_path(path, 1, "read_file")
  local f <close> = fs.open(path)
  return f:read_all()
end

-- An atomic write renames a new regular file over path: over a FIFO, a
-- device node or a directory that would replace the thing itself (as root,
-- /dev/full became a file). Only a regular file or nothing may be there.
local function refuse_special(path)
  local ok, st = pcall(core.stat, path)
  if not ok then
    if is_code(st, "ENOENT") then return end
    error(st, 0)
  end
  if st.type ~= "file" then
    error(setmetatable({kind = "IOError", code = "EINVAL", op = "write_file", path = path,
                        message = format("not a regular file (a %s): an atomic write replaces only a regular file", st.type)},
                       IOError), 0)
  end
end

-- fs.write_file(path, data [, {atomic=, append=, perm=}]): atomic writes
-- a temporary file next to path, syncs it and renames it over path, so a
-- reader sees the old contents or the new, never a part; on failure or
-- cancellation the temporary file is removed.
function fs.write_file(path, data, opts)
  check_path(path, 1, "write_file")
  if type(data) ~= "string" then argerror(2, "write_file", "string expected, got " .. type(data)) end
  opts = check_opts(opts, 3, "write_file")
  if not opts.atomic then
    local f <close> = fs.open(path, opts.append and "a" or "w", opts.perm)
    f:write(data)
    return
  end
  if opts.append then argerror(3, "write_file", "atomic and append do not go together") end
  refuse_special(path)
  local tmp = format("%s.tmp-%d-%d", path, math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
  local ok, err = pcall(function()
    local f <close> = fs.open(tmp, "wx", opts.perm)
    f:write(data)
    f:sync()
  end)
  if ok then ok, err = pcall(core.rename, tmp, path) end
  if not ok then
    pcall(core.unlink, tmp)
    error(err, 0)
  end
end

------------------------------------------------------------- the tree

function fs.stat(path) check_path(path, 1, "stat") return core.stat(path) end
function fs.lstat(path) check_path(path, 1, "lstat") return core.lstat(path) end

-- fs.exists(path): false when nothing is there (or a path component is
-- not a directory); other failures raise.
function fs.exists(path)
  check_path(path, 1, "exists")
  local ok, err = pcall(core.stat, path)
  if ok then return true end
  if is_code(err, "ENOENT", "ENOTDIR") then return false end
  error(err, 0)
end

-- fs.list_dir(path): the names in the directory, sorted.
function fs.list_dir(path)
  check_path(path, 1, "list_dir")
  local names = core.scandir(path)
  sort(names)
  return names
end

-- fs.mkdir(path [, {recursive=, perm=}]): recursive makes the missing
-- parents and accepts a directory that exists already.
function fs.mkdir(path, opts)
  check_path(path, 1, "mkdir")
  opts = check_opts(opts, 2, "mkdir")
  if not opts.recursive then return core.mkdir(path, opts.perm) end
  local ok, err = pcall(core.mkdir, path, opts.perm)
  if ok then return end
  if is_code(err, "EEXIST") then
    if core.stat(path).type == "directory" then return end
    error(err, 0)
  end
  local parent = path:match("^(.*[^/])/+[^/]+/*$")
  if not is_code(err, "ENOENT") or not parent then error(err, 0) end
  fs.mkdir(parent, opts)
  ok, err = pcall(core.mkdir, path, opts.perm)
  if not ok and not (is_code(err, "EEXIST") and core.stat(path).type == "directory") then error(err, 0) end
end

-- fs.remove(path [, {recursive=}]): a file, link or empty directory; with
-- recursive, a directory and everything in it (links are not followed).
function fs.remove(path, opts)
  check_path(path, 1, "remove")
  opts = check_opts(opts, 2, "remove")
  if core.lstat(path).type ~= "directory" then return core.unlink(path) end
  if opts.recursive then
    for _, name in ipairs(core.scandir(path)) do fs.remove(path .. "/" .. name, opts) end
  end
  core.rmdir(path)
end

function fs.rename(from, to)
  check_path(from, 1, "rename")
  check_path(to, 2, "rename")
  core.rename(from, to)
end

-- fs.temp_dir([prefix]): a new directory in $TMPDIR (or /tmp), private to
-- the user; the caller removes it (fs.remove(dir, {recursive = true})).
function fs.temp_dir(prefix)
  if prefix ~= nil and (type(prefix) ~= "string" or prefix:find("/")) then
    argerror(1, "temp_dir", "prefix without '/' expected")
  end
  return core.mkdtemp((os.getenv("TMPDIR") or "/tmp") .. "/" .. (prefix or "lasync-") .. "XXXXXX")
end

fs.File = File
require("async.class").check_self(File)  -- a wrong self raises at once

return fs
