-- async.http.router: method + path routing with `:name` and `*name`
-- parameters, 404 and 405 (with Allow) by default, and a middleware chain
-- of plain functions. A router is callable, so it is a handler itself:
--   local r = http.router()
--   r:use(function(req, next) ... return next() end)
--   r:get("/users/:id", function(req) return 200, req.params.id end)
--   http.serve{handler = r}
-- Paths without parameters are found by one table lookup; the others are
-- tried in the order they were added.
local server = require "async.http.server"

local format, concat, sort = string.format, table.concat, table.sort
local M = {}

local Router = {}
Router.__index = Router
Router.__name = "lasync.HttpRouter"

function M.new()
  return setmetatable({static = {}, dynamic = {}, by_pattern = {}, middleware = {}}, Router)
end

-- "/users/:id/*rest" -> the Lua pattern and the parameter names, or nil
-- for a path without parameters.
local function compile(pattern)
  if not pattern:find("[:*]") then return nil end
  local names, parts = {}, {}
  for seg in pattern:gmatch("/([^/]*)") do
    local kind, name = seg:sub(1, 1), seg:sub(2)
    if kind == ":" or kind == "*" then
      if not name:find("^[%a_][%w_]*$") then
        error(format("router: bad parameter name %q in %q", name, pattern), 3)
      end
      names[#names + 1] = name
      parts[#parts + 1] = kind == ":" and "/([^/]+)" or "/(.*)"
    else
      if seg:find("[:*]") then error(format("router: ':' or '*' inside a segment of %q", pattern), 3) end
      parts[#parts + 1] = "/" .. seg:gsub("%p", "%%%0")
    end
  end
  return "^" .. concat(parts) .. "$", names
end

-- router:route(method, pattern, fn): fn(req, res) answers `method` on
-- paths matching pattern. Returns the router (calls chain).
function Router:route(method, pattern, fn)
  if type(method) ~= "string" or not method:find("^[A-Z]+$") then
    error("router:route: method must be an upper-case name such as \"GET\"", 2)
  end
  if type(pattern) ~= "string" or pattern:sub(1, 1) ~= "/" then
    error("router:route: pattern must be a path starting with /", 2)
  end
  if type(fn) ~= "function" and not (getmetatable(fn) or {}).__call then
    error("router:route: handler must be a function", 2)
  end
  local lua_pat, names = compile(pattern)
  local methods
  if not lua_pat then
    methods = self.static[pattern] or {}
    self.static[pattern] = methods
  else
    local entry = self.by_pattern[pattern]
    if not entry then
      entry = {pat = lua_pat, names = names, methods = {}}
      self.by_pattern[pattern] = entry
      self.dynamic[#self.dynamic + 1] = entry
    end
    methods = entry.methods
  end
  if methods[method] then error(format("router: %s %s is already routed", method, pattern), 2) end
  methods[method] = fn
  return self
end

for _, m in ipairs{"get", "post", "put", "delete", "patch", "options"} do
  local M_ = m:upper()
  Router[m] = function(self, pattern, fn) return self:route(M_, pattern, fn) end
end

-- router:use(fn): adds middleware fn(req, next, res); it returns what the
-- handler would (usually `return next()`), or answers itself.
function Router:use(fn)
  if type(fn) ~= "function" then error("router:use: middleware must be a function", 2) end
  self.middleware[#self.middleware + 1] = fn
  return self
end

local function allow(methods)
  local list = {}
  for m in pairs(methods) do list[#list + 1] = m end
  if methods.GET and not methods.HEAD then list[#list + 1] = "HEAD" end
  sort(list)
  return concat(list, ", ")
end

-- Finds the handler: fn, or nil and the 404/405 response.
local function find(self, req)
  local path = req.path
  local methods = self.static[path]
  if not methods then
    local dyn = self.dynamic
    for i = 1, #dyn do
      local e = dyn[i]
      local caps = {path:match(e.pat)}
      if caps[1] then
        methods = e.methods
        local params = req.params
        for j = 1, #e.names do params[e.names[j]] = caps[j] end
        break
      end
    end
  end
  if not methods then return nil, 404, "Not Found\n" end
  local fn = methods[req.method] or (req.method == "HEAD" and methods.GET)
  if fn then return fn end
  return nil, 405, "Method Not Allowed\n", {Allow = allow(methods)}
end

local function dispatch(self, req, res)
  local fn, status, body, headers = find(self, req)
  if fn then return fn(req, res) end
  return status, body, headers
end

local function run(self, req, res, i)
  local mw = self.middleware[i]
  if not mw then return dispatch(self, req, res) end
  return mw(req, function() return run(self, req, res, i + 1) end, res)
end

-- router(req, res): the handler.
function Router:__call(req, res)
  if #self.middleware == 0 then return dispatch(self, req, res) end
  return run(self, req, res, 1)
end

Router.handle = Router.__call

-- Parameters come decoded: req.path is decoded already.
M.unescape = server.unescape

return M
