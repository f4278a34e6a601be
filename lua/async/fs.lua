-- async.fs: files and directories. Every call runs on libuv's thread pool
-- (async.core.fs, one C function per system call) and suspends only the
-- calling task. This file holds the policy: File objects with a read
-- buffer for lines, whole-file reads and writes (atomic: a temporary file
-- renamed over the target), recursive mkdir and remove, temp dirs.
--
-- Files read and write at explicit offsets, so a cancelled read consumes
-- nothing (the next read gets the same bytes) and a cancelled write does
-- not move the position.
local core = require "async.core.fs"
local check = require "async.internal.check"

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
  if f.fd == nil then error(what .. ": attempt to use a closed file", 3) end
  return f.fd
end

-- fs.open(path [, mode [, perm]]): a File. mode as io.open: "r" (default),
-- "w", "a", "r+", "w+", "a+", and "wx" / "w+x" (fail if it exists).
function fs.open(path, mode, perm)
  check_path(path, 1, "open")
  if mode ~= nil and type(mode) ~= "string" then argerror(2, "open", "mode string expected") end
  if perm ~= nil and math_type(perm) ~= "integer" then argerror(3, "open", "permissions (integer) expected") end
  local fd = core.open(path, mode or "r", perm)
  return setmetatable({fd = fd, path = path, pos = 0, buf = "", bi = 1,
                       append = (mode or ""):sub(1, 1) == "a"}, File)
end

local function unread(f) return #f.buf - f.bi + 1 end

-- Reads the next chunk into the buffer; false at the end of the file.
local function fill(f, want)
  local data = core.read(f.fd, want > CHUNK and want or CHUNK, f.pos + unread(f), f.path)
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

-- f:read([n]): up to n bytes (default 65536); nil at the end.
function File:read(n)
  check_open(self, "read")
  if n ~= nil and (math_type(n) ~= "integer" or n < 1) then argerror(1, "read", "positive number of bytes expected") end
  n = n or CHUNK
  if unread(self) == 0 and not fill(self, n) then return nil end
  return take(self, n < unread(self) and n or unread(self))
end

-- f:read_line(): the next line without "\n" (and "\r"); the last one even
-- without a "\n"; nil at the end.
function File:read_line()
  check_open(self, "read_line")
  local from = self.bi
  while true do
    local j = self.buf:find("\n", from, true)
    if j then
      local line = take(self, j - self.bi + 1)
      return line:sub(-2) == "\r\n" and line:sub(1, -3) or line:sub(1, -2)
    end
    from = #self.buf + 1 - self.bi + 1       -- resume after what was searched
    if not fill(self, CHUNK) then
      if unread(self) == 0 then return nil end
      return take(self, unread(self))
    end
  end
end

function File:lines()
  check_open(self, "lines")
  return function() return self:read_line() end
end

-- f:read_all(): the rest of the file ("" at the end).
function File:read_all()
  check_open(self, "read_all")
  local parts = {unread(self) > 0 and take(self, unread(self)) or nil}
  while true do
    local data = core.read(self.fd, 1 << 20, self.pos, self.path)
    if data == nil then return concat(parts) end
    parts[#parts + 1] = data
    self.pos = self.pos + #data
  end
end

-- f:write(...): writes the strings (or numbers) at the position (at the
-- end in append mode); returns the file.
function File:write(...)
  check_open(self, "write")
  local data
  if select("#", ...) == 1 then data = ... else data = concat({...}) end
  if math_type(data) then data = tostring(data) end
  if type(data) ~= "string" then argerror(1, "write", "string expected, got " .. type(data)) end
  if unread(self) > 0 then self.buf, self.bi = "", 1 end   -- drop read-ahead
  local done = 0
  while done < #data do
    local chunk = done == 0 and data or data:sub(done + 1)
    local n = core.write(self.fd, chunk, self.append and -1 or self.pos, self.path)
    done = done + n
    if not self.append then self.pos = self.pos + n end
  end
  return self
end

-- f:seek([whence [, offset]]) as Lua's file:seek: "set", "cur" (default)
-- or "end"; returns the new position.
function File:seek(whence, offset)
  check_open(self, "seek")
  whence, offset = whence or "cur", offset or 0
  if math_type(offset) ~= "integer" then argerror(2, "seek", "integer offset expected") end
  local base
  if whence == "set" then base = 0
  elseif whence == "cur" then base = self.pos
  elseif whence == "end" then base = core.fstat(self.fd, self.path).size
  else argerror(1, "seek", "\"set\", \"cur\" or \"end\" expected, got " .. tostring(whence)) end
  if base + offset < 0 then error(format("seek: position %d is before the start of %s", base + offset, self.path), 2) end
  self.pos, self.buf, self.bi = base + offset, "", 1
  return self.pos
end

function File:stat() return core.fstat(check_open(self, "stat"), self.path) end
function File:sync() core.fsync(check_open(self, "sync"), self.path) return self end
function File:truncate(size) core.truncate(check_open(self, "truncate"), size or 0, self.path) return self end

-- f:close(): idempotent. A close cancelled while it runs still closes.
function File:close()
  local fd = self.fd
  if fd == nil then return end
  self.fd = nil
  core.close(fd, self.path)
end

function File:closed() return self.fd == nil end

File.__close = File.close
function File:__gc() if self.fd then core.close_now(self.fd) self.fd = nil end end
function File:__tostring()
  return format("File<%s%s>", self.path, self.fd and "" or ", closed")
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
return fs
