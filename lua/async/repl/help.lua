-- async.repl.help: `help` at the REPL. The text is docs/API.md, compiled
-- into the binary by the build (async.core.apidoc), so help always says
-- what the reference says. help(value) finds the value's name (async.gather,
-- the `cancel` method of tasks) and prints the section or table row that
-- documents it; help "text" searches the headings, then the rows.
local M = {}

local doc                                   -- {lines = {...}, heads = {{level, title, line}}}

local function load_doc()
  if doc then return doc end
  local ok, text = pcall(require, "async.core.apidoc")
  doc = {lines = {}, heads = {}}
  if not ok or type(text) ~= "string" then return doc end
  local fence = false
  for line in (text .. "\n"):gmatch("(.-)\r?\n") do
    local n = #doc.lines + 1
    doc.lines[n] = line
    if line:match("^```") then fence = not fence end
    local hashes, title = line:match("^(#+)%s+(.*)$")
    if hashes and not fence then doc.heads[#doc.heads + 1] = {level = #hashes, title = title, line = n} end
  end
  return doc
end

local function escape(s) return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end

-- The lines of the section under heading h, up to the next heading of the
-- same or a higher level.
local function section(d, k)
  local h, stop = d.heads[k], #d.lines
  for j = k + 1, #d.heads do
    if d.heads[j].level <= h.level then stop = d.heads[j].line - 1 break end
  end
  return table.concat(d.lines, "\n", h.line, stop):gsub("%s+$", "") .. "\n"
end

-- The table rows and bullets that document `name` (e.g. "q:get", "cancel"
-- for any method of that name), under their section titles.
local function rows(d, name)
  local pat = name:find("[.:]") and "`" .. escape(name) .. "[(`%s]"
              or "`[%w_]+[.:]" .. escape(name) .. "[(`%s]"
  local out, title, last = {}, nil, nil
  for _, line in ipairs(d.lines) do
    local t = line:match("^#+%s+(.*)$")
    if t then title = t end
    if (line:match("^|") or line:match("^%s*[-*] ")) and line:find(pat) then
      if title ~= last then out[#out + 1] = "## " .. (title or "?"); last = title end
      local cells = {}
      for cell in line:gmatch("|([^|]*)") do cells[#cells + 1] = cell:match("^%s*(.-)%s*$") end
      out[#out + 1] = #cells >= 2 and cells[1] .. "\n    " .. cells[2] or line
    end
  end
  return #out > 0 and table.concat(out, "\n") .. "\n" or nil
end

-- The headings that name `q` as a word, preferring "q(".
local function headings(d, q)
  local word = "%f[%w_]" .. escape(q) .. "%f[^%w_]"
  local exact, loose = {}, {}
  for k, h in ipairs(d.heads) do
    if h.title:find(word .. "%(") or h.title:find("^" .. escape(q) .. "$") then exact[#exact + 1] = k
    elseif h.title:lower():find(escape(q:lower()), 1) then loose[#loose + 1] = k end
  end
  return exact, loose
end

-- The name of a value: "async.x", "async.net.x", or ":x" for a method of a
-- type whose methods are in its metatable's __index.
function M.name_of(v)
  local async = require "async"
  if v == async then return "async" end
  for k, x in next, async do
    if x == v then return "async." .. k end
  end
  for k, sub in next, async do
    if type(sub) == "table" and k:match("^%l") then
      for k2, x in next, sub do
        if x == v then return "async." .. k .. "." .. k2 end
      end
    end
  end
  for name, mt in next, debug.getregistry() do
    if type(name) == "string" and type(mt) == "table" and type(rawget(mt, "__index")) == "table" then
      for k, x in next, mt.__index do
        if x == v then return ":" .. k end
      end
    end
  end
  return nil
end

local function overview(d)
  local out = {"lasync: help(value) or help \"text\" shows the reference; sections:"}
  for _, h in ipairs(d.heads) do
    if h.level == 2 then out[#out + 1] = "  " .. h.title end
  end
  out[#out + 1] = "At the prompt: tasks() lists the live tasks, help(x) documents x, "
                  .. ".exit (or Ctrl-D) leaves; see docs/repl.md."
  return table.concat(out, "\n") .. "\n"
end

-- text(x): the help text for a value or a search string.
function M.text(x)
  local d = load_doc()
  if #d.lines == 0 then return "help: the API reference is not built into this binary\n" end
  if x == nil then return overview(d) end
  local q = type(x) == "string" and x or M.name_of(x)
  if not q then return ("help: no entry for this %s (%s)\n"):format(type(x), tostring(x)) end
  if q == "async" then return overview(d) end
  if q:sub(1, 1) == ":" then return rows(d, q:sub(2)) or "help: no entry for method " .. q:sub(2) .. "\n" end
  local exact, loose = headings(d, q)
  if #exact == 0 and q:match("^async%.") then exact = headings(d, q:sub(7)) end
  if #exact >= 1 then return section(d, exact[1]) end
  local r = rows(d, q)
  if r then return r end
  if #loose == 1 then return section(d, loose[1]) end
  if #loose > 1 then
    local out = {("help: %q is in several sections:"):format(q)}
    for _, k in ipairs(loose) do out[#out + 1] = "  " .. d.heads[k].title end
    return table.concat(out, "\n") .. "\n"
  end
  return ("help: nothing about %q in the reference\n"):format(q)
end

-- Names documented as `async.x` (for completion of lazily loaded fields).
function M.async_names()
  local d, seen, list = load_doc(), {}, {}
  for _, line in ipairs(d.lines) do
    for name in line:gmatch("async%.([%a_][%w_]*)") do
      if not seen[name] then seen[name] = true; list[#list + 1] = name end
    end
  end
  return list
end

return M
