-- async.internal.redis_keys: what Redis Cluster routing needs to know about
-- a command: the hash slot of a key (CRC16-XMODEM of the key, or of its
-- {hash tag}, mod 16384), and which arguments are keys, read from the
-- server's own key specs (COMMAND INFO, Redis 7), so that a command this
-- file never heard of is still routed right.
local type, tostring, tonumber, select, lower = type, tostring, tonumber, select, string.lower
local byte, find = string.byte, string.find

local M = {}

-- CRC16-XMODEM (polynomial 0x1021, initial 0), the one in Redis's
-- crc16.c; one table lookup per byte.
local crctab = {}
for i = 0, 255 do
  local c = i << 8
  for _ = 1, 8 do
    c = (c & 0x8000 ~= 0) and (((c << 1) ~ 0x1021) & 0xffff) or ((c << 1) & 0xffff)
  end
  crctab[i] = c
end

local function crc16(s, i, j)
  local c = 0
  for k = i, j do
    c = ((c << 8) & 0xffff) ~ crctab[((c >> 8) ~ byte(s, k)) & 0xff]
  end
  return c
end
M.crc16 = crc16

-- The slot of a key: only the part between the first "{" and the next "}"
-- counts when it is not empty, so "user:{42}:name" and "{42}" share one.
local function slot(key)
  if type(key) ~= "string" then key = tostring(key) end
  local i = find(key, "{", 1, true)
  if i then
    local j = find(key, "}", i + 1, true)
    if j and j > i + 1 then return crc16(key, i + 1, j - 1) & 16383 end
  end
  return crc16(key, 1, #key) & 16383
end
M.slot = slot

------------------------------------------------------------- key specs

-- A RESP2 map (a flat array of name, value) as a table.
local function map(a)
  local t = {}
  if type(a) == "table" then
    for i = 1, #a - 1, 2 do t[a[i]] = a[i + 1] end
  end
  return t
end

-- One key spec of COMMAND INFO as {bs, a, b, fk, x, y, z}: begin search
-- "index" (a = position) or "keyword" (a = keyword, b = startfrom); find
-- keys "range" (x = lastkey, y = step, z = limit) or "keynum" (x =
-- keynumidx, y = firstkey, z = step). nil for a spec of unknown type.
local function compile_spec(raw)
  local s = map(raw)
  local bs, fk = map(s.begin_search), map(s.find_keys)
  local bsp, fkp = map(bs.spec), map(fk.spec)
  local out = {}
  if bs.type == "index" then out.bs, out.a = "index", tonumber(bsp.index)
  elseif bs.type == "keyword" then
    out.bs, out.a, out.b = "keyword", lower(bsp.keyword), tonumber(bsp.startfrom)
  else return nil end
  if fk.type == "range" then
    out.fk, out.x, out.y, out.z = "range", tonumber(fkp.lastkey), tonumber(fkp.keystep),
                                  tonumber(fkp.limit) or 0
  elseif fk.type == "keynum" then
    out.fk, out.x, out.y, out.z = "keynum", tonumber(fkp.keynumidx), tonumber(fkp.firstkey),
                                  tonumber(fkp.keystep)
  else return nil end
  return out
end

-- What routing needs of one COMMAND INFO entry: {specs = {...}} (empty:
-- keyless), {getkeys = true} (ask the server: COMMAND GETKEYS), or
-- {sub = {name = info}} for a container (XGROUP, OBJECT, ...), and
-- `simple` = the position of the only key of a one-key command.
local function compile(e)
  local subs = e[10]
  if type(subs) == "table" and #subs > 0 then
    local t = {}
    for _, s in ipairs(subs) do
      local name = s[1]:match("|(.+)$")
      if name then t[lower(name)] = compile(s) end
    end
    return {sub = t}
  end
  local flags = {}
  for _, f in ipairs(type(e[3]) == "table" and e[3] or {}) do flags[f] = true end
  local raw = e[9]
  if type(raw) ~= "table" then               -- before Redis 7: first, last, step
    local first, last, step = e[4], e[5], e[6]
    if flags.movablekeys then return {getkeys = true} end
    if first == 0 then return {specs = {}} end
    raw = {{"begin_search", {"type", "index", "spec", {"index", first}},
            "find_keys", {"type", "range", "spec", {"lastkey", last < 0 and last or last - first,
                                                    "keystep", step, "limit", 0}}}}
  end
  local specs = {}
  for i, r in ipairs(raw) do
    local s = compile_spec(r)
    if not s then return {getkeys = true} end
    specs[i] = s
  end
  local info = {specs = specs}
  local s1 = specs[1]
  if #specs == 1 and s1.bs == "index" and s1.fk == "range" and s1.x == 0 then
    info.simple = s1.a
  end
  return info
end
M.compile = compile

-- Calls add(key) for each key of argv (argv[0] is the command name, argc
-- counts it), the way Redis's getKeysUsingKeySpecs finds them.
local function each_key(specs, argv, argc, add)
  for _, s in ipairs(specs) do
    local first
    if s.bs == "index" then first = s.a
    else
      local from = s.b > 0 and s.b or argc + s.b
      local stop, d = s.b > 0 and argc - 1 or 0, s.b > 0 and 1 or -1
      for i = from, stop, d do
        local a = argv[i]
        if a and lower(tostring(a)) == s.a then first = i + 1; break end
      end
    end
    if first and first < argc then
      local last, step
      if s.fk == "range" then
        step = s.y
        if s.x >= 0 then last = first + s.x
        elseif s.z == 0 then last = argc + s.x
        else last = first + (argc - first) // s.z + s.x end
      else
        local n = tonumber(argv[first + s.x]) or 0
        first = first + s.y
        last, step = first + n - 1, s.z
      end
      if step < 1 then step = 1 end
      for i = first, math.min(last, argc - 1), step do add(argv[i]) end
    end
  end
end

-- The slot of a command's keys: a slot, nil (no key) or false, key, key2
-- (two keys in different slots). info comes from compile().
function M.slot_of(info, ...)
  local p = info.simple
  if p then
    if select("#", ...) < p then return nil end
    return slot((select(p, ...)))
  end
  local argv = {[0] = true, ...}
  local argc = select("#", ...) + 1
  local found, first_key, other
  each_key(info.specs, argv, argc, function(k)
    local s = slot(k)
    if found == nil then found, first_key = s, k
    elseif s ~= found and other == nil then other = k end
  end)
  if other ~= nil then return false, first_key, other end
  return found
end

-- The subcommand's info of a container command, or nil.
function M.sub_info(info, name)
  if type(name) ~= "string" then return nil end
  return info.sub[lower(name)]
end

return M
