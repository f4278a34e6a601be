-- tests/pgserver.lua: a throwaway PostgreSQL server for the tests and the
-- pg scripts. initdb into a fresh directory under /tmp (as the postgres
-- user when we are root: the server refuses to run as root), then pg_ctl
-- start with the Unix socket in that directory and TCP on a free port of
-- 127.0.0.1. The socket accepts the superuser without a password; TCP asks
-- for one (scram), so password handling is tested for real.
--
--   local pgserver = require "pgserver"
--   local srv, why = pgserver.start()    -- nil and the reason if no server
--   srv.url        -- "postgresql://postgres@/postgres?host=<dir>&port=<port>"
--   srv.tcp_url    -- "postgresql://postgres:<password>@127.0.0.1:<port>/postgres"
--   srv:kill()     -- pg_ctl stop -m immediate (the server dies mid-work)
--   srv:restart()  -- start again on the same port and directory
--   srv:stop()     -- stop and remove the directory (idempotent)
--
-- Blocking calls (os.execute): the server takes a second to start.
local M = {}

M.password = "s3cr3t-pw"

local function sh(cmd)
  local ok = os.execute(cmd .. " >/dev/null 2>&1")
  return ok == true
end

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- The newest installed server's bin directory, or nil. LASYNC_PG_BINDIR
-- names another (a directory without initdb: the skip path, tested).
function M.bindir()
  local forced = os.getenv("LASYNC_PG_BINDIR")
  if forced then
    return sh("test -x " .. quote(forced .. "/initdb")) and forced or nil
  end
  local p = io.popen("ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1")
  local d = p:read("l")
  p:close()
  if d and d ~= "" and sh("test -x " .. quote(d .. "/initdb")) then return d end
  return nil
end

local function free_port()
  local net = require "async.core.net"
  local l = net.tcp_listen("127.0.0.1", 0)
  local _, port = l:address()
  l:close()
  return port
end

local function is_root()
  local p = io.popen("id -u")
  local u = p:read("l")
  p:close()
  return u == "0"
end

local Server = {}
Server.__index = Server

-- Runs a server binary as the server's user.
function Server:run(cmd)
  if self.root then cmd = "runuser -u postgres -- " .. cmd end
  return sh(cmd)
end

function Server:pg_ctl(args)
  return self:run(quote(self.bin .. "/pg_ctl") .. " -D " .. quote(self.data) .. " " .. args)
end

function Server:restart()
  local opts = ("-k %s -p %d -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60")
    :format(self.dir, self.port)
  return self:pg_ctl("-w -t 30 -l " .. quote(self.dir .. "/log") .. " -o " .. quote(opts) ..
                     " start")
end

function Server:kill() return self:pg_ctl("-m immediate stop") end

function Server:stop()
  if self.stopped then return end
  self.stopped = true
  self:pg_ctl("-m fast -w stop")
  if self.dir:match("^/tmp/lasync%-pg%.") then os.execute("rm -rf " .. quote(self.dir)) end
end

function Server:log()
  local f = io.open(self.dir .. "/log")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

-- Starts a server; returns it, or nil and why not.
function M.start()
  local bin = M.bindir()
  if not bin then return nil, "no PostgreSQL server binary (/usr/lib/postgresql/*/bin/initdb)" end
  local root = is_root()
  local p = io.popen("mktemp -d /tmp/lasync-pg.XXXXXX")
  local dir = p:read("l")
  p:close()
  local srv = setmetatable({bin = bin, dir = dir, data = dir .. "/data", root = root,
                            port = free_port()}, Server)
  local pw = dir .. "/pw"
  local f = assert(io.open(pw, "w"))
  f:write(M.password, "\n")
  f:close()
  if root then sh("chown -R postgres " .. quote(dir) .. " && chmod 755 " .. quote(dir)) end
  if not srv:run(quote(bin .. "/initdb") .. " -D " .. quote(srv.data) ..
                 " -U postgres -E UTF8 --locale=C --no-sync --auth-local=trust" ..
                 " --auth-host=scram-sha-256 --pwfile=" .. quote(pw)) then
    os.execute("rm -rf " .. quote(dir))
    return nil, "initdb failed in " .. dir
  end
  if not srv:restart() then
    local log = srv:log()
    srv:stop()
    return nil, "pg_ctl start failed: " .. log
  end
  srv.url = ("postgresql://postgres@/postgres?host=%s&port=%d"):format(dir, srv.port)
  srv.tcp_url = ("postgresql://postgres:%s@127.0.0.1:%d/postgres"):format(M.password, srv.port)
  return srv
end

return M
