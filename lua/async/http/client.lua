-- async.http.client: the HTTP client, on libcurl's multi interface driven
-- by the loop (host/net/: curl.c, http_client.c, http_session.c). C owns
-- the transfers; this file is the policy: sessions and their limits (a
-- caller beyond them waits, never fails), URLs and query strings, header
-- merging, JSON bodies, the total timeout across the pool wait, the
-- response object with its streaming reads, and atomic downloads.
local async = require "async"
-- libcurl is loaded on first use (its global init costs a script that only
-- serves HTTP about 2 ms at start).
local function core() return require "async.core.http" end
local json = require "async.json"
local sync = require "async.sync"

local type, error, pcall, pairs, ipairs, tostring, setmetatable = type, error, pcall, pairs, ipairs, tostring, setmetatable
local format, lower, concat = string.format, string.lower, table.concat
local now = async.time

local M = {}

local DEFAULTS = {limit = 100, limit_per_host = 10, timeout = 300, connect_timeout = 30,
                  max_redirects = 10, stream_buffer = 256 * 1024}

local function argerror(what, msg, level)
  error(format("bad argument to '%s' (%s)", what, msg), (level or 2) + 1)
end

---------------------------------------------------------------- URLs

local function escape(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return format("%%%02X", c:byte()) end))
end
M.escape = escape

-- "a=1&b=x%20y" from {a = 1, b = "x y"} (sorted keys, so requests repeat
-- exactly) or from a list of {name, value} pairs (order kept).
local function encode_query(q)
  local parts = {}
  if q[1] ~= nil then
    for _, kv in ipairs(q) do parts[#parts + 1] = escape(kv[1]) .. "=" .. escape(kv[2]) end
  else
    local keys = {}
    for k in pairs(q) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    for _, k in ipairs(keys) do
      local v = q[k]
      if v == nil then v = q[tonumber(k)] end
      if type(v) == "table" then
        for _, x in ipairs(v) do parts[#parts + 1] = escape(k) .. "=" .. escape(x) end
      else parts[#parts + 1] = escape(k) .. "=" .. escape(v) end
    end
  end
  return concat(parts, "&")
end
M.encode_query = encode_query

local function join_url(base, url)
  if base == nil or url:match("^%a[%w+.-]*://") then return url end
  if url:sub(1, 1) == "/" then
    local root = base:match("^(%a[%w+.-]*://[^/]+)") or base
    return root .. url
  end
  return (base:gsub("/*$", "")) .. "/" .. url
end

-- The pool key of a URL: scheme://host:port, lower case.
local function origin(url)
  local scheme, rest = url:match("^(%a[%w+.-]*)://([^/?#]*)")
  if not scheme then return nil end
  return lower(scheme) .. "://" .. lower((rest:gsub("^.*@", "")))
end

------------------------------------------------------------ headers

local Headers = {}
Headers.__index = function(h, k)
  if type(k) == "string" then return rawget(h, lower(k)) end
end
Headers.__name = "lasync.HttpHeaders"

-- Parses the raw header block: status line, then "Name: value" lines.
-- Returns the headers map (first value of each name, lower-cased key;
-- repeated ones joined with ", " but Set-Cookie's kept apart in the list)
-- and the ordered list of {name, value}, and the reason phrase.
local function parse_head(raw)
  local map, list, reason = {}, {}, nil
  for line in raw:gmatch("([^\r\n]*)\r?\n") do
    if reason == nil then
      reason = line:match("^HTTP/%S+%s+%d+%s*(.*)$") or ""
    else
      local name, value = line:match("^([^:%s]+)%s*:%s*(.-)%s*$")
      if name then
        list[#list + 1] = {name, value}
        local k = lower(name)
        local old = rawget(map, k)
        if old == nil then map[k] = value
        elseif k ~= "set-cookie" then map[k] = old .. ", " .. value end
      end
    end
  end
  return setmetatable(map, Headers), list, reason or ""
end

-- Header lines for libcurl from the session's and the request's tables
-- ({name = value}; a false value removes a session header).
local function header_lines(base, extra, out)
  local merged, names = {}, {}
  for _, t in ipairs{base or {}, extra or {}} do
    for k, v in pairs(t) do
      if type(k) ~= "string" then error("header names must be strings (got " .. type(k) .. ")", 4) end
      if k:find("[%c:]") then error(format("bad header name %q", k), 4) end
      local lk = lower(k)
      if v == false then merged[lk] = nil
      else
        v = tostring(v)
        if v:find("[\r\n]") then error(format("header %s has a line break in its value", k), 4) end
        merged[lk], names[lk] = v, k
      end
    end
  end
  for lk, v in pairs(merged) do
    out[#out + 1] = v == "" and (names[lk] .. ";") or (names[lk] .. ": " .. v)
  end
  return merged
end

------------------------------------------------------------ response

-- Gives back the slots a request took (acquire, below).
local function release(self, key, host)
  self._total:release()
  host.sem:release()
  host.users = host.users - 1
  if host.users == 0 then self._hosts[key] = nil end
end

local Response = {}
Response.__name = "lasync.HttpResponse"
-- headers, header_list and reason are parsed from the raw block on first use.
local LAZY = {headers = true, header_list = true, reason = true}
Response.__index = function(r, k)
  if LAZY[k] then
    local head = rawget(r, "_head")
    if head == nil then return nil end
    r._head = nil
    r.headers, r.header_list, r.reason = parse_head(head)
    return rawget(r, k)
  end
  return Response[k]
end
M.Response = Response

function Response:__tostring()
  return format("Response<%d %s>", self.status, self.url)
end

-- Lets go of the transfer and the session slot (idempotent).
local function finish(r)
  local t = r._t
  if t then
    r._t = nil
    t:close()
    release(r._session, r._key, r._host)
  end
end

function Response:close() finish(self) end

-- A streamed response collected unclosed gives its pool slot back (from
-- the loop, not from inside the collector); its transfer is freed by its
-- own finalizer. Closing it is still the rule: until the collector runs,
-- the slot and the connection stay taken.
function Response:__gc()
  if self._t then
    self._t = nil
    async.call_soon(release, self._session, self._key, self._host)
  end
end
Response.__close = Response.close
function Response:closed() return self._t == nil end

-- r:json(): the body decoded (reads it first when streaming).
function Response:json()
  return json.decode(self:text())
end

-- r:text(): the whole body (the rest of it when streaming).
function Response:text()
  if self.body == nil then
    local t = self._t or error("the response is closed", 2)
    local ok, b = pcall(t.read_all, t)
    finish(self)
    if not ok then error(b, 0) end
    self.body = b
  end
  return self.body
end

-- r:read([n]): up to n bytes of a streamed body; nil at the end.
function Response:read(n)
  if n ~= nil and (math.type(n) ~= "integer" or n <= 0) then argerror("read", "size must be a positive integer") end
  if self.body ~= nil then                -- read whole already: serve it
    local b = self.body
    if self._pos == nil then self._pos = 1 end
    if self._pos > #b then return nil end
    local s = b:sub(self._pos, n and self._pos + n - 1 or #b)
    self._pos = self._pos + #s
    return s
  end
  local t = self._t
  if t == nil then return nil end
  local ok, s = pcall(t.read, t, n)
  if not ok or s == nil then
    finish(self)
    if not ok then error(s, 0) end
  end
  return s
end

-- for chunk in r:chunks([size]) do ... end
function Response:chunks(size)
  return function() return self:read(size) end
end

-- for line in r:lines() do ... end: lines without "\n" or "\r\n"; a last
-- line without one too.
function Response:lines()
  local pending = ""
  return function()
    while true do
      local i = pending:find("\n", 1, true)
      if i then
        local line = pending:sub(1, i - 1)
        pending = pending:sub(i + 1)
        return (line:gsub("\r$", ""))
      end
      local chunk = self:read()
      if chunk == nil then
        if pending == "" then return nil end
        local line = pending
        pending = ""
        return line
      end
      pending = pending .. chunk
    end
  end
end

-- r:get_all(name): every value of a header, in order (Set-Cookie!).
function Response:get_all(name)
  local out, k = {}, lower(name)
  for _, kv in ipairs(self.header_list) do
    if lower(kv[1]) == k then out[#out + 1] = kv[2] end
  end
  return out
end

-- r:info(): what libcurl measured: total_time, connect_time, bytes,
-- new_connections (0 when a pooled connection was reused), paused.
function Response:info()
  if self._t then return self._t:info() end
  return self._info
end

-- r:raise_for_status(): raises an HTTPError for 4xx and 5xx; returns r.
function Response:raise_for_status()
  if self.status >= 400 then
    error(setmetatable({kind = "HTTPError", code = "EHTTP", status = self.status, url = self.url,
                        message = format("HTTP %d %s", self.status, self.reason)}, M.HTTPError), 2)
  end
  return self
end

M.HTTPError = {__name = "lasync.HTTPError",
               __tostring = function(e) return format("HTTPError: %s (%s)", e.message, e.url) end}

------------------------------------------------------------ sessions

local Session = {}
Session.__index = Session
Session.__name = "lasync.HttpSessionObject"
M.Session = Session

local REQUEST_KEYS = {method = true, url = true, headers = true, body = true, json = true,
  query = true, form = true, timeout = true, connect_timeout = true, read_timeout = true,
  max_redirects = true, stream = true, insecure = true, ca_file = true, cert = true, key = true,
  proxy = true, http_version = true, decompress = true, stream_buffer = true, verbose = true}

local SESSION_KEYS = {limit = true, limit_per_host = true, base_url = true, cookies = true}
for k in pairs(REQUEST_KEYS) do SESSION_KEYS[k] = true end

local function opt(o, d, k)
  local v = o[k]
  if v == nil then v = d[k] end
  if v == nil then v = DEFAULTS[k] end
  return v
end

-- The options of a request that change the easy handle's setup.
local EASY_KEYS = {"connect_timeout", "read_timeout", "max_redirects", "insecure", "ca_file",
                   "cert", "key", "proxy", "http_version", "decompress", "verbose",
                   "stream", "stream_buffer"}

local function check_seconds(v, k, level)
  if v ~= nil and (type(v) ~= "number" or v ~= v or v < 0) then
    argerror("request", k .. " must be a number of seconds >= 0 (got " .. tostring(v) .. ")", level)
  end
end

-- The table session:start reads (it keeps nothing of it): made once per
-- session for requests that set none of EASY_KEYS.
local function easy_options(o, d)
  check_seconds(opt(o, d, "connect_timeout"), "connect_timeout", 4)
  check_seconds(opt(o, d, "read_timeout"), "read_timeout", 4)
  return {
    connect_timeout = opt(o, d, "connect_timeout"), read_timeout = opt(o, d, "read_timeout"),
    max_redirects = opt(o, d, "max_redirects"), insecure = opt(o, d, "insecure"),
    ca_file = opt(o, d, "ca_file"), cert = opt(o, d, "cert"), key = opt(o, d, "key"),
    proxy = opt(o, d, "proxy"), http_version = opt(o, d, "http_version"),
    no_decompress = opt(o, d, "decompress") == false, verbose = opt(o, d, "verbose"),
    high = o.stream and opt(o, d, "stream_buffer") or 0,
  }
end

-- session{limit=, limit_per_host=, timeout=, headers=, base_url=, cookies=,
-- and any request option as a default}: a pool of connections.
function M.session(opts)
  if opts ~= nil and type(opts) ~= "table" then argerror("session", "table expected, got " .. type(opts)) end
  opts = opts or {}
  for k in pairs(opts) do
    if not SESSION_KEYS[k] then argerror("session", "unknown option '" .. tostring(k) .. "'") end
  end
  local limit, per_host = opts.limit or DEFAULTS.limit, opts.limit_per_host or DEFAULTS.limit_per_host
  for name, v in pairs{limit = limit, limit_per_host = per_host} do
    if math.type(v) ~= "integer" or v <= 0 then argerror("session", name .. " must be a positive integer") end
  end
  local s = setmetatable({
    _core = core().session(limit, per_host, opts.cookies ~= false),
    _total = sync.semaphore(limit), _hosts = {}, _per_host = per_host,
    defaults = opts, limit = limit, limit_per_host = per_host,
  }, Session)
  s._copts = easy_options({}, opts)
  return s
end

function Session:close()
  if self._core then self._core:close() end
end
Session.__close = Session.close
Session.__gc = Session.close

function Session:stats() return self._core:stats() end

local function remaining(deadline)
  return deadline and math.max(deadline - now(), 0.001) or nil
end

local function timeout_error(which, method, url, sec)
  return setmetatable({kind = "Timeout", code = "ETIMEDOUT", which = which, url = url,
    message = format("%s timeout after %g s: %s %s", which, sec, method, url)}, async.Timeout)
end

-- Takes a slot of the session and one of the URL's origin, waiting for
-- them within the deadline; returns the origin's record (for release).
-- When both are free nothing waits, so no timer is armed.
local function acquire(self, key, deadline, method, url, total)
  local host = self._hosts[key]
  if not host then
    host = {sem = sync.semaphore(self._per_host), users = 0}
    self._hosts[key] = host
  end
  host.users = host.users + 1
  local hsem, tsem = host.sem, self._total
  local ok, err, got_host
  if deadline and (hsem:locked() or tsem:locked()) then
    ok, err = pcall(async.timeout, remaining(deadline), function()
      hsem:acquire(); got_host = true
      tsem:acquire()
    end)
  else
    ok, err = pcall(hsem.acquire, hsem)
    got_host = ok
    if ok then ok, err = pcall(tsem.acquire, tsem) end
  end
  if not ok then
    if got_host then hsem:release() end
    host.users = host.users - 1
    if host.users == 0 then self._hosts[key] = nil end
    if async.is_timeout(err) then error(timeout_error("total", method, url, total), 0) end
    error(err, 0)
  end
  return host
end

-- Works out method, URL, header lines and body from the options.
local function prepare(self, o)
  local d = self.defaults
  local method = o.method or "GET"
  if type(method) ~= "string" or not method:match("^%u+$") then
    argerror("request", "method must be an upper-case token like \"GET\"", 3)
  end
  local url = o.url
  if type(url) ~= "string" or url == "" then argerror("request", "url expected", 3) end
  url = join_url(o.base_url or d.base_url, url)
  if not url:match("^[hH][tT][tT][pP][sS]?://[^/]") then
    argerror("request", "url must be http:// or https:// (got " .. url .. ")", 3)
  end
  if o.query ~= nil then
    if type(o.query) ~= "table" then argerror("request", "query must be a table", 3) end
    local q = encode_query(o.query)
    if q ~= "" then url = url .. (url:find("?", 1, true) and "&" or "?") .. q end
  end
  local lines, body = {"Expect:"}, o.body
  local extra = o.headers
  if extra ~= nil and type(extra) ~= "table" then argerror("request", "headers must be a table", 3) end
  local n = (o.json ~= nil and 1 or 0) + (o.form ~= nil and 1 or 0) + (body ~= nil and 1 or 0)
  if n > 1 then argerror("request", "give one of body, json and form", 3) end
  local ctype
  if o.json ~= nil then body, ctype = json.encode(o.json), "application/json"
  elseif o.form ~= nil then
    if type(o.form) ~= "table" then argerror("request", "form must be a table", 3) end
    body, ctype = encode_query(o.form), "application/x-www-form-urlencoded"
  elseif body ~= nil and type(body) ~= "string" then
    argerror("request", "body must be a string (got " .. type(body) .. ")", 3)
  end
  local merged = header_lines(d.headers, extra, lines)
  if ctype and merged["content-type"] == nil then lines[#lines + 1] = "Content-Type: " .. ctype end
  return method, url, lines, body
end

-- session:request{...}: the response (body read, unless stream=true).
function Session:request(o)
  if type(o) ~= "table" then argerror("request", "table expected, got " .. type(o)) end
  local own = false
  for k in pairs(o) do
    if not REQUEST_KEYS[k] and k ~= "base_url" then argerror("request", "unknown option '" .. tostring(k) .. "'") end
  end
  for i = 1, #EASY_KEYS do if o[EASY_KEYS[i]] ~= nil then own = true break end end
  if self._core == nil then error("the session is closed", 2) end
  local d = self.defaults
  local method, url, lines, body = prepare(self, o)
  local total = opt(o, d, "timeout")
  check_seconds(total, "timeout", 3)
  local copts = own and easy_options(o, d) or self._copts
  local deadline = total and total ~= math.huge and now() + total or nil
  local key = origin(url) or url
  local host = acquire(self, key, deadline, method, url, total)
  local ok, t = pcall(self._core.start, self._core, method, url, lines, body, copts, remaining(deadline))
  if not ok then release(self, key, host); error(t, 2) end
  local r = setmetatable({_t = t, _session = self, _key = key, _host = host, method = method}, Response)
  local status, head, version, eff, rbody
  if o.stream then ok, status, head, version, eff = pcall(t.headers, t)
  else ok, status, head, version, eff, rbody = pcall(t.complete, t) end  -- one wait
  if not ok then finish(r); error(status, 0) end
  if not o.stream then
    r.body, r._info = rbody, t:info()
    finish(r)
  end
  r.status, r.http_version, r.url, r._head = status, version, eff, head
  return r
end

local function shorthand(method)
  return function(self, url, o)
    if o ~= nil and type(o) ~= "table" then argerror(lower(method), "options must be a table") end
    local req = {}
    for k, v in pairs(o or {}) do req[k] = v end
    req.method, req.url = method, url
    return self:request(req)
  end
end
for _, m in ipairs{"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"} do Session[lower(m)] = shorthand(m) end

-- session:download(url, path [, opts]): streams the body to a temporary
-- file next to path and renames it over path once complete, so path is
-- the whole body or untouched. Returns the response (body not kept).
function Session:download(url, path, o)
  if type(path) ~= "string" or path == "" then argerror("download", "path expected") end
  local fs = require "async.fs"
  local req = {}
  for k, v in pairs(o or {}) do req[k] = v end
  req.url, req.stream = url, true
  req.method = req.method or "GET"
  local r <close> = self:request(req)
  if r.status >= 400 then
    r:close()
    return r:raise_for_status()
  end
  local tmp = format("%s.part-%d", path, math.random(1 << 30))
  local ok, err = pcall(function()
    local f <close> = fs.open(tmp, "w")
    local bytes = 0
    for chunk in r:chunks() do f:write(chunk); bytes = bytes + #chunk end
    f:sync()
    r.bytes = bytes
  end)
  if ok then ok, err = pcall(fs.rename, tmp, path) end
  if not ok then
    pcall(fs.remove, tmp)
    error(err, 0)
  end
  return r
end

---------------------------------------------------- module-level calls

local default
local function session()
  if default == nil or default._core == nil then default = M.session() end
  return default
end
M.default_session = session

function M.request(o) return session():request(o) end
for _, m in ipairs{"get", "post", "put", "delete", "patch", "head", "download"} do
  M[m] = function(...) local s = session() return s[m](s, ...) end
end

-- stats(): {easy = libcurl easy handles alive}, for leak checks.
function M.stats() return core().stats() end

local class = require "async.class"
class.check_self(Response)   -- a wrong self raises at once (it wrote into
class.check_self(Session)    -- another type's object before)
return M
