-- async.pg: PostgreSQL on libpq, driven by the loop (docs/pg.md). The
-- connection, its pipeline and the conversions are C (host/db/pg*.c); this
-- file holds the policy: timeouts, parameters that are tables,
-- transactions, notifications and the pool.
local async = require "async"
local core = require "async.core.pg"

local Conn, types = core.Connection, core.types
local type, error, pcall, select, setmetatable, getmetatable = type, error, pcall, select,
  setmetatable, getmetatable
local unpack, concat, format = table.unpack, table.concat, string.format

local pg = {PgError = types.PgError, is_error = types.is_error, Connection = Conn}

-- NULL, both ways: a row's NULL field reads as pg.null (a table cannot hold
-- nil); nil or pg.null as a parameter is sent as NULL.
pg.null = setmetatable({}, {__name = "pg.null", __tostring = function() return "pg.null" end})

local Bytea = {__name = "pg.bytea"}
local Json = {__name = "pg.json"}

-- pg.bytea(s): s sent as bytea (binary, any bytes).
function pg.bytea(s)
  if type(s) ~= "string" then error(format("bad argument #1 to 'bytea' (string expected, got %s)", type(s)), 2) end
  return setmetatable({s}, Bytea)
end

-- pg.json(v): v sent as JSON text (a Lua sequence would otherwise be an array).
function pg.json(v) return setmetatable({v}, Json) end

local has_json, json = pcall(require, "async.json")
if not has_json then json = nil end

local function hex(s)
  return "\\x" .. s:gsub(".", function(ch) return format("%02x", ch:byte()) end)
end

local function is_sequence(t)
  local n = #t
  if n == 0 then return next(t) == nil end
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 or k > n then return false end
  end
  return true
end

local array_literal

local function array_elem(v, depth)
  local tv = type(v)
  if v == nil or v == pg.null then return "NULL" end
  if tv == "boolean" then return v and "t" or "f" end
  if tv == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    if v ~= v then return "NaN" end
    if v == math.huge then return "Infinity" elseif v == -math.huge then return "-Infinity" end
    return format("%.17g", v)
  end
  if tv == "string" then
    if v:find("\0", 1, true) then error("array element: string with a zero byte (pass pg.bytea(s))", 0) end
    return '"' .. v:gsub('[\\"]', "\\%0") .. '"'
  end
  if getmetatable(v) == Bytea then return '"' .. hex(v[1]):gsub("\\", "\\\\") .. '"' end
  if tv == "table" and getmetatable(v) == nil and is_sequence(v) then return array_literal(v, depth + 1) end
  error("array element: " .. tv .. " cannot be in an array parameter", 0)
end

function array_literal(t, depth)
  if depth > 6 then error("array parameter nested too deep", 0) end
  local parts = {}
  for i = 1, #t do parts[i] = array_elem(t[i], depth) end
  return "{" .. concat(parts, ",") .. "}"
end

-- The C side calls encode(v, argn) for a table or userdata parameter; it
-- returns the value's text (or bytes), its type OID (0: let the server
-- infer it) and its format (1: binary); nil for NULL (json.null). A table
-- json.array marked goes as JSON, another sequence as an array.
local function encode(v, argn)
  local mt = getmetatable(v)
  local ok, s = true, nil
  if mt == Bytea then return v[1], 17, 1 end
  if json and v == json.null then return nil end           -- NULL
  if json and type(v) == "table" and json.is_array(v) then return json.encode(v), 0, 0 end
  if mt == Json then
    if not json then error(format("bad argument #%d (pg.json needs async.json)", argn), 0) end
    return json.encode(v[1]), 0, 0
  end
  if type(v) == "table" and mt == nil then
    if is_sequence(v) then ok, s = pcall(array_literal, v, 0)
    elseif json then ok, s = pcall(json.encode, v)
    else s = "a table with keys needs async.json to be sent as JSON" ; ok = false end
    if ok then return s, 0, 0 end
    error(format("bad argument #%d (%s)", argn, s), 0)
  end
  error(format("bad argument #%d (%s cannot be a query parameter)", argn,
               mt and mt.__name or type(v)), 0)
end

local config = {null = pg.null, encode = encode, json_decode = json and json.decode or nil}
pg.config = config

-- ------------------------------------------------------------ connections

local state = setmetatable({}, {__mode = "k"})   -- conn -> {timeout=, tx=}

local function check_timeout(v, what)
  if v ~= nil and (type(v) ~= "number" or v ~= v or v < 0) then
    error(format("%s: timeout must be a non-negative number, got %s", what, tostring(v)), 3)
  end
  return v
end

-- pg.connect(conninfo [, {timeout = 10, query_timeout = nil}]): conninfo is
-- a libpq connection string or a postgresql:// URL.
function pg.connect(conninfo, opts)
  if type(conninfo) ~= "string" then
    error(format("bad argument #1 to 'connect' (string expected, got %s)", type(conninfo)), 2)
  end
  opts = opts or {}
  if type(opts) ~= "table" then error("bad argument #2 to 'connect' (table expected)", 2) end
  local t = check_timeout(opts.timeout, "pg.connect") or 10
  local qt = check_timeout(opts.query_timeout, "pg.connect")
  local c = async.timeout(t, core.connect, conninfo, config)
  if qt then state[c] = {timeout = qt} end
  return c
end

-- A query's deadline: the table form's timeout, else the connection's.
local function with_deadline(cfn, name)
  return function(c, sql, ...)
    local st = state[c]
    if type(sql) == "table" then
      local t = check_timeout(sql.timeout, "pg." .. name) or (st and st.timeout)
      local args = sql
      if t then return async.timeout(t, cfn, c, args[1], unpack(args, 2, args.n or #args)) end
      return cfn(c, args[1], unpack(args, 2, args.n or #args))
    end
    if st and st.timeout then return async.timeout(st.timeout, cfn, c, sql, ...) end
    return cfn(c, sql, ...)
  end
end
for _, name in ipairs{"query", "exec", "query_prepared", "exec_prepared"} do
  Conn[name] = with_deadline(Conn[name], name)
end

-- conn:query_one(sql, ...): the first row, or nil.
function Conn:query_one(sql, ...)
  return self:query(sql, ...)[1]
end

-- conn:query_value(sql, ...): the first column of the first row, or nil.
function Conn:query_value(sql, ...)
  local rows = self:query(sql, ...)
  local row = rows[1]
  return row and row[rows.columns[1]]
end

-- ------------------------------------------------------------ transactions

local Tx = {__name = "lasync.PgTransaction"}
Tx.__index = Tx

local function conn_state(c)
  local st = state[c]
  if not st then st = {}; state[c] = st end
  return st
end

-- conn:begin([mode]): a transaction (`<close>`: rolled back unless
-- committed). Inside one, begin() makes a savepoint. mode is appended to
-- BEGIN ("ISOLATION LEVEL SERIALIZABLE", "READ ONLY").
function Conn:begin(mode)
  local st = conn_state(self)
  local depth = (st.depth or 0) + 1
  if mode ~= nil and (type(mode) ~= "string" or not mode:match("^[%a ]+$")) then
    error("bad argument #1 to 'begin' (transaction mode expected, e.g. \"READ ONLY\")", 2)
  end
  if depth == 1 then self:exec(mode and "BEGIN " .. mode or "BEGIN")
  else self:exec("SAVEPOINT lasync_" .. depth) end
  st.depth = depth
  return setmetatable({conn = self, depth = depth}, Tx)
end

local function tx_end(tx, how)
  if tx.done then error("transaction already " .. tx.done, 3) end
  local st = conn_state(tx.conn)
  if st.depth ~= tx.depth then error("an inner transaction is still open", 3) end
  tx.done = how == "commit" and "committed" or "rolled back"
  st.depth = tx.depth - 1
  if tx.depth == 1 and how == "commit" then
    -- COMMIT of a transaction an error aborted rolls back and says so
    -- only in its tag: make that an error, not a silent loss.
    if tx.conn:query("COMMIT").command == "ROLLBACK" then
      error("commit: the transaction had failed and was rolled back", 3)
    end
  elseif tx.depth == 1 then tx.conn:exec("ROLLBACK")
  elseif how == "commit" then tx.conn:exec("RELEASE SAVEPOINT lasync_" .. tx.depth)
  else tx.conn:exec("ROLLBACK TO SAVEPOINT lasync_" .. tx.depth) end
end

function Tx:commit() tx_end(self, "commit") end
function Tx:rollback() tx_end(self, "rollback") end
function Tx:begin(mode) return self.conn:begin(mode) end
for _, name in ipairs{"query", "exec", "query_one", "query_value", "prepare", "query_prepared",
                      "exec_prepared", "copy_in", "copy_out"} do
  Tx[name] = function(tx, ...) return tx.conn[name](tx.conn, ...) end
end

-- Leaving the scope without commit (error, cancellation) rolls back. A
-- rollback that fails (the connection broke) leaves a connection the pool
-- drops, as it is not idle.
function Tx.__close(tx)
  if not tx.done then pcall(tx_end, tx, "rollback") end
  if tx.release then tx.release() end
end

-- ------------------------------------------------------------ notifications

-- conn:next_notification([timeout]): the next notification, waiting at
-- most timeout seconds (async.Timeout) when given.
local cnext = Conn.next_notification
function Conn:next_notification(timeout)
  if timeout ~= nil then
    check_timeout(timeout, "pg.next_notification")
    return async.timeout(timeout, cnext, self)
  end
  return cnext(self)
end

local function quote_ident(s)
  if type(s) ~= "string" or s == "" then error("channel name must be a non-empty string", 3) end
  return '"' .. s:gsub('"', '""') .. '"'
end

-- for n in conn:notifications("chan", ...) do: LISTENs on the channels and
-- yields each notification ({channel, payload, pid}); leaving the loop
-- UNLISTENs. The connection should serve nothing else meanwhile.
function Conn:notifications(...)
  local chans, set = {...}, {}
  if #chans == 0 then error("notifications: at least one channel expected", 2) end
  for i, ch in ipairs(chans) do
    chans[i] = quote_ident(ch)
    set[ch] = true
  end
  for _, q in ipairs(chans) do self:exec("LISTEN " .. q) end
  local conn = self
  local closer = setmetatable({}, {__close = function()
    if conn:status() == "ok" then
      for _, q in ipairs(chans) do pcall(conn.exec, conn, "UNLISTEN " .. q) end
    end
  end})
  return function()
    while true do
      local n = conn:next_notification()
      if set[n.channel] then return n end
    end
  end, nil, nil, closer
end

-- ------------------------------------------------------------ COPY

-- conn:copy_in(sql, source): runs COPY ... FROM STDIN, sending the chunks
-- source gives (a function called until it returns nil, or a list of
-- strings) in COPY's format; returns the row count. An error raised by
-- source aborts the COPY (the server keeps none of it) and is re-raised.
function Conn:copy_in(sql, source)
  local st = type(source)
  if st == "table" then
    local i, list = 0, source
    source = function() i = i + 1; return list[i] end
  elseif st ~= "function" then
    error(format("bad argument #2 to 'copy_in' (function or table expected, got %s)", st), 2)
  end
  if self:copy_start(sql) ~= "in" then
    while self:copy_get() ~= nil do end
    error("copy_in: the statement is a COPY TO, not a COPY FROM STDIN", 2)
  end
  local ok, err = pcall(function()
    for chunk in source do
      if type(chunk) ~= "string" then error("copy_in: source gave a " .. type(chunk) .. ", not a string", 0) end
      self:copy_put(chunk)
    end
  end)
  if not ok then
    if self:status() == "copy" then pcall(self.copy_end, self, "aborted: " .. tostring(err)) end
    error(err, 0)
  end
  return self:copy_end()
end

-- for chunk in conn:copy_out(sql) do: runs COPY ... TO STDOUT and yields
-- its data chunk by chunk (one row each, in COPY's format), read as the
-- loop asks for it. Leaving the loop early ends the connection (the rest
-- of the COPY cannot be skipped): read to the end to keep it.
function Conn:copy_out(sql)
  if self:copy_start(sql) ~= "out" then
    pcall(self.copy_end, self, "not a COPY TO")
    error("copy_out: the statement is a COPY FROM, not a COPY TO STDOUT", 2)
  end
  local conn = self
  local closer = setmetatable({}, {__close = function()
    if conn:status() == "copy" then conn:close() end
  end})
  return function() return (conn:copy_get()) end, nil, nil, closer
end

-- ------------------------------------------------------------ pool

require("async.class").check_self(Tx)  -- a wrong self raises at once
pg.pool = require("async.pg.pool")(pg, Conn, Tx)

return pg
