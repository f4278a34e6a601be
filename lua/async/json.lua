-- async.json: JSON text to Lua values and back. Decoding is lua-cjson's
-- (Debian's package) and encoding a C encoder of ours (host/data/json.c
-- says why); this file is the API. The rules (docs/API.md, "async.json"):
--   null        decodes to json.null (a sentinel; nil cannot sit in a
--               table); json.null and nil encode as null.
--   arrays      a table whose keys are exactly 1..n (n > 0) encodes as an
--               array; an empty table as {} unless marked with
--               json.array(t); holes raise (fill them with json.null).
--               Decoded arrays and objects are plain tables: an empty
--               [] and {} both decode to {} (cjson 2.1 cannot tell them).
--   numbers     integers encode exactly; floats as the shortest text that
--               reads back equal ("1.0" for an integral float). Decoding
--               makes integral numbers below 2^53 in magnitude integers
--               (so 1.0 decodes as 1); from 2^53 on they stay floats
--               (precision is lost there: send big ids as strings).
--   errors      decode raises json.Error {message, position (byte)};
--               encode raises naming the value and its path ("$.a[2]").
--   limits      1000 levels of nesting both ways; text must be UTF-8.
local core = require "async.core.json"

local type, error, setmetatable, getmetatable, format = type, error, setmetatable, getmetatable, string.format
local array_mt, null = core.array_mt, core.null

local json = {null = null, Error = core.Error, decode = core.decode}

-- json.encode(value [, {max_depth = n}]): the JSON text.
function json.encode(v, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error(format("bad argument #2 to 'encode' (table expected, got %s)", type(opts)), 2)
  end
  local depth = opts and opts.max_depth
  if depth ~= nil and math.type(depth) ~= "integer" then
    error("bad argument #2 to 'encode' (max_depth must be an integer)", 2)
  end
  local s, err = core.encode(v, depth)
  if s == nil then error(err, 2) end
  return s
end

-- json.array([t]): marks t (a new table when nil) as an array, so it
-- encodes as [] even when empty; returns it.
function json.array(t)
  if t == nil then t = {} end
  if type(t) ~= "table" then
    error(format("bad argument #1 to 'array' (table expected, got %s)", type(t)), 2)
  end
  local mt = getmetatable(t)
  if mt ~= nil and mt ~= array_mt then
    error("bad argument #1 to 'array' (the table has a metatable already)", 2)
  end
  return setmetatable(t, array_mt)
end

function json.is_array(t) return getmetatable(t) == array_mt end
function json.is_null(v) return v == null end

return json
