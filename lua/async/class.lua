-- async.class: what the types written in Lua (File, Server, Process,
-- Scope) share. A C method checks its userdata's type; a Lua method
-- called with a wrong self (`File.read(5)`, `f.read(nil)`) failed late
-- instead, with "attempt to index a number value", or worse, a __gc
-- given a stray table acted on its fields.
local getmetatable, type, pairs, error, format = getmetatable, type, pairs, error, string.format

local M = {}

local function typename(v)
  local mt = getmetatable(v)
  return type(mt) == "table" and type(mt.__name) == "string" and mt.__name or type(v)
end
M.typename = typename

-- check_self(class): every function of the class table (methods and
-- metamethods) checks that its first argument is an object of the class:
-- "bad self to 'read' (lasync.File expected, got number)".
function M.check_self(class)
  local name = class.__name
  local fns = {}
  for k, f in pairs(class) do
    if type(k) == "string" and type(f) == "function" and k ~= "__index" then fns[k] = f end
  end
  for k, f in pairs(fns) do
    class[k] = function(self, ...)
      if getmetatable(self) ~= class then
        error(format("bad self to '%s' (%s expected, got %s)", k, name, typename(self)), 2)
      end
      return f(self, ...)
    end
  end
  return class
end

return M
