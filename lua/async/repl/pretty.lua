-- async.repl.pretty: values as the REPL shows them. Strings are quoted,
-- tables are shown with their contents (array part first, then the other
-- keys sorted: numbers, then strings, then the rest), nested up to a depth
-- limit, on one line when they fit and indented otherwise. A table met
-- again inside itself is shown as <cycle>. Values whose metatable has
-- __tostring (tasks, futures, errors) are shown by tostring.
local M = {depth = 4, width = 72, items = 100}

local format, concat, rep = string.format, table.concat, string.rep
local type, tostring, getmetatable, rawget = type, tostring, getmetatable, rawget

local escapes = {["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n", ["\r"] = "\\r",
                 ["\t"] = "\\t", ["\0"] = "\\0"}

function M.quote(s)
  return '"' .. s:gsub('[%c\\"]', function(c)
    return escapes[c] or format("\\%d", c:byte())
  end) .. '"'
end

local function is_identifier(k)
  return type(k) == "string" and k:match("^[%a_][%w_]*$") ~= nil
    and not ({["and"] = 1, ["break"] = 1, ["do"] = 1, ["else"] = 1, ["elseif"] = 1,
      ["end"] = 1, ["false"] = 1, ["for"] = 1, ["function"] = 1, ["goto"] = 1, ["if"] = 1,
      ["in"] = 1, ["local"] = 1, ["nil"] = 1, ["not"] = 1, ["or"] = 1, ["repeat"] = 1,
      ["return"] = 1, ["then"] = 1, ["true"] = 1, ["until"] = 1, ["while"] = 1})[k]
end

local kind_order = {number = 1, string = 2}

local function key_less(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return (kind_order[ta] or 3) < (kind_order[tb] or 3) end
  if ta == "number" or ta == "string" then return a < b end
  return tostring(a) < tostring(b)
end

local function has_tostring(v)
  local mt = getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__tostring") ~= nil
end

-- A function as "function: 0x... (file:line)" or "builtin: 0x...".
local function show_function(f)
  local info = debug.getinfo(f, "S")
  if info.what == "C" then return "builtin: " .. tostring(f):gsub("^function: ", "") end
  return format("%s (%s:%d)", tostring(f), info.short_src, info.linedefined)
end

local show

-- The keys of t: the array part 1..n, then the rest sorted.
local function table_keys(t)
  local n, keys = 0, {}
  while rawget(t, n + 1) ~= nil do n = n + 1 end
  for k in next, t do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  pcall(table.sort, keys, key_less)
  return n, keys
end

local function show_table(t, depth, path, indent)
  if path[t] then return "<cycle " .. tostring(t) .. ">" end
  if next(t) == nil then return "{}" end
  if depth >= M.depth then return "{...}" end
  path[t] = true
  local n, keys = table_keys(t)
  local parts = {}
  for i = 1, math.min(n, M.items) do parts[#parts + 1] = show(rawget(t, i), depth + 1, path, indent + 2) end
  for _, k in ipairs(keys) do
    if #parts >= M.items then break end
    local ks = is_identifier(k) and k or "[" .. show(k, M.depth, path, indent + 2) .. "]"
    parts[#parts + 1] = ks .. " = " .. show(rawget(t, k), depth + 1, path, indent + 2)
  end
  local more = n + #keys - #parts
  if more > 0 then parts[#parts + 1] = format("... (%d more)", more) end
  path[t] = nil
  local line = "{" .. concat(parts, ", ") .. "}"
  if #line + indent <= M.width and not line:find("\n", 1, true) then return line end
  local pad = rep(" ", indent + 2)
  return "{\n" .. pad .. concat(parts, ",\n" .. pad) .. "\n" .. rep(" ", indent) .. "}"
end

function show(v, depth, path, indent)
  local tv = type(v)
  if tv == "string" then return M.quote(v) end
  if tv == "function" then return show_function(v) end
  if tv == "table" and not has_tostring(v) then return show_table(v, depth, path, indent) end
  local ok, s = pcall(tostring, v)
  return ok and s or "<" .. tv .. ": __tostring failed>"
end

-- pretty(v): the text of one value.
function M.pretty(v)
  return show(v, 0, {}, 0)
end

-- values(n, ...): the n values, separated by ", ".
function M.values(n, ...)
  local parts = {}
  if math.type(n) ~= "integer" or n < 0 then
    error("bad argument #1 to 'values' (count of values expected)", 2)
  end
  n = math.min(n, select("#", ...))      -- a count past the values shows no more nils
  for i = 1, n do parts[i] = show((select(i, ...)), 0, {}, 0) end
  return concat(parts, ", ")
end

return M
