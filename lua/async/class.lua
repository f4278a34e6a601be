-- async.class: what the types written in Lua (File, Server, Process,
-- Scope) share. A C method checks its userdata's type; a Lua method
-- called with a wrong self (`File.read(5)`, `f.read(nil)`) failed late
-- instead, with "attempt to index a number value", or worse, a __gc
-- given a stray table acted on its fields.
local getmetatable, type, pairs, error, format = getmetatable, type, pairs, error, string.format
local setmetatable, rawget = setmetatable, rawget

local M = {}

local function typename(v)
  local mt = getmetatable(v)
  return type(mt) == "table" and type(mt.__name) == "string" and mt.__name or type(v)
end
M.typename = typename

-- bad_self(method, mt, self): raises what a wrong self gets, naming the
-- caller of the method; for a hot method that checks itself (below).
function M.bad_self(k, mt, self)
  error(format("bad self to '%s' (%s expected, got %s)", k, rawget(mt, "__name"), typename(self)), 3)
end

local checked = setmetatable({}, {__mode = "k"})   -- the classes wrapped already

-- Left unwrapped in a separate metatable: __index runs on every field
-- read, and a binary operator's object may be either operand.
local BINARY = {__index = true, __eq = true, __lt = true, __le = true, __concat = true,
                __add = true, __sub = true, __mul = true, __div = true, __mod = true,
                __pow = true, __idiv = true, __band = true, __bor = true, __bxor = true,
                __shl = true, __shr = true}
-- check_self(class [, mt [, own]]): every function of the class table
-- (methods and metamethods) checks that its first argument is an object
-- of the class (whose metatable is mt, by default the class itself):
-- "bad self to 'read' (lasync.File expected, got number)". The names in
-- the set `own` check themselves with bad_self: a wrapper's vararg call
-- costs a hot method about 8% (a Redis command, under callgrind).
function M.check_self(class, mt, own)
  mt = mt or class
  -- a class is a plain table (an object has a metatable) named by its
  -- metatable's __name, and is wrapped once: given an object, this wrapped
  -- the functions it holds (a server's handler) and broke it
  if type(class) ~= "table" or type(mt) ~= "table" or getmetatable(class) ~= nil
     or getmetatable(mt) ~= nil or type(rawget(mt, "__name")) ~= "string" then
    error(format("check_self: a class table named by __name expected, got %s", typename(class)), 2)
  end
  if checked[class] then error("check_self: " .. rawget(mt, "__name") .. " is checked already", 2) end
  checked[class] = true
  local name = rawget(mt, "__name")
  local function wrap(t, skip)
    local fns = {}
    for k, f in pairs(t) do
      if type(k) == "string" and type(f) == "function" and not skip[k] then fns[k] = f end
    end
    for k, f in pairs(fns) do
      t[k] = function(self, ...)
        if getmetatable(self) ~= mt then
          error(format("bad self to '%s' (%s expected, got %s)", k, name, typename(self)), 2)
        end
        return f(self, ...)
      end
    end
  end
  local skip = {__index = true}
  for k in pairs(own or {}) do skip[k] = true end
  wrap(class, skip)
  -- a metatable apart from the class holds metamethods too (__close,
  -- __gc, __tostring), reachable as getmetatable(obj).__gc(anything)
  if mt ~= class then wrap(mt, BINARY) end
  return class
end

return M
