-- async.repl: the Lua half of the REPL (the C half, host/repl/repl.c, reads the
-- input, edits lines and draws the prompt). A session compiles what is
-- typed, runs each complete chunk as a task that prints its values or its
-- error, and keeps the chunk's top-level locals in an environment of its
-- own (async.repl.locals) whose misses go to _G. Helpers live in that
-- environment: help, tasks. docs/repl.md describes it all.
local async = require "async"
local locals = require "async.repl.locals"
local pretty = require "async.repl.pretty"

local pack, unpack, select, concat = table.pack, table.unpack, select, table.concat
local format = string.format

local M = {pretty = pretty.pretty}

local Session = {}
Session.__index = Session

------------------------------------------------------------ compiling

-- Lua's "<eof>" test (lua.c incomplete()): the chunk stops mid-statement.
local function incomplete(err) return err and err:sub(-5) == "<eof>" end

-- Compiles src: an expression (its values are printed), else a statement
-- chunk with its top-level locals rewritten. Returns the function and
-- whether it takes the helper table; nil, "more" when src is incomplete;
-- nil, message on a syntax error.
function Session:compile(src)
  local name, env = ("=%s#%d"):format(self.chunkname, self.count + 1), self.env
  if src:sub(1, 1) == "=" then src = "return " .. src:sub(2) end   -- Lua 5.1's "=expr"
  local f, err1 = load("return " .. src, name, "t", env)
  if f then return f, false end
  local err
  f, err = load(src, name, "t", env)
  if not f then
    if incomplete(err) or incomplete(err1) then return nil, "more" end
    -- A statement that fails at its first token was no statement: the
    -- expression's message says more ("1 +* 2": near '*', not near '1').
    local first = locals.tokens(src)[1][2]
    if err:find("near '" .. first .. "'", 1, true) and err:match("^[^:]*:1:") then err = err1 end
    return nil, err
  end
  local ok, rewritten = pcall(locals.rewrite, src, "__repl")
  if ok and rewritten then
    local g = load("local __repl = ...; " .. rewritten, name, "t", env)
    if g then return g, true end
  end
  return f, false
end

--------------------------------------------------------------- running

-- The traceback of an error in a chunk, without the REPL's own frames.
local function handler(e)
  local msg = e
  if type(e) ~= "string" then
    local ok, s = pcall(tostring, e)
    msg = ok and s or "(error object is a " .. type(e) .. " value)"
  end
  local tb = debug.traceback(msg, 2)
  local cut = tb:find("\n%s*%[C%]: in function 'xpcall'.*$") or tb:find("\n%s*%(%.%.%.tail calls%.%.%.%)\n%s*%[C%]: in function 'xpcall'")
  return {value = e, text = cut and tb:sub(1, cut - 1) or tb}
end

local function run_line(self, fn, takes_helper)
  local res = pack(xpcall(fn, handler, takes_helper and self.helper or nil))
  if res[1] then
    if res.n > 1 then self.io.out(pretty.values(res.n - 1, unpack(res, 2, res.n)) .. "\n") end
    return
  end
  local e = res[2]
  -- Ctrl-C: the line's task was cancelled, or its code interrupted (the
  -- interrupt may come before the C half has told the session)
  if async.is_cancelled(e.value) and (self.interrupted or tostring(e.value):find("interrupted (Ctrl-C)", 1, true)) then
    self.io.err(tostring(e.value) .. "\n")
  else
    self.io.err(e.text .. "\n")
  end
end

function Session:spawn(fn, takes_helper)
  self.interrupted = false
  local t = async.spawn(run_line, self, fn, takes_helper)
  t:set_name(format("%s#%d", self.chunkname, self.count))
  self.line_task = t
  return t
end

---------------------------------------------------------------- helpers

-- The first frame of user code in a traceback ("stdin:3", "app.lua:12").
local function where(stack)
  for line in (stack or ""):gmatch("[^\n]+") do
    local loc = line:match("^%s*([^%s]+:%d+):")
    if loc and not loc:match("^async/") and not loc:match("^%[C%]") then return loc end
  end
  return nil
end

-- The live tasks but the calling one, as a table (id, name, state, waiting
-- on, where).
function M.tasks_text()
  local me = async.current()
  local rows = {{"id", "name", "state", "waiting on", "at"}}
  for _, info in ipairs(async.tasks()) do
    if info.task ~= me then
      rows[#rows + 1] = {tostring(info.id), info.name, info.state,
                         info.waiting and info.waiting:gsub("%(%d+%.?%d* s left%)", "(timed)") or "",
                         info.where or where(info.stack) or ""}
    end
  end
  if #rows == 1 then return "no live tasks\n" end
  local widths = {}
  for _, r in ipairs(rows) do
    for i, c in ipairs(r) do widths[i] = math.max(widths[i] or 0, #c) end
  end
  local out = {format("%d live task%s:", #rows - 1, #rows == 2 and "" or "s")}
  for _, r in ipairs(rows) do
    local cells = {}
    for i, c in ipairs(r) do cells[i] = i == 1 and (" "):rep(widths[i] - #c) .. c or c .. (" "):rep(widths[i] - #c) end
    out[#out + 1] = ("  " .. concat(cells, "  ")):gsub("%s+$", "")
  end
  return concat(out, "\n") .. "\n"
end

-- A helper shown by typing its name (tostring) and called with arguments.
local function helper(show, call)
  return setmetatable({}, {__tostring = function() return (show():gsub("\n$", "")) end,
                           __call = function(_, ...) return call(...) end,
                           __name = "repl helper"})
end

function Session:install_helpers()
  local io = self.io
  local help = require "async.repl.help"
  self.helpers = {
    help = helper(function() return help.text() end,
                  function(...) io.out(help.text(select("#", ...) > 0 and (...) or nil)) end),
    tasks = helper(M.tasks_text, function() io.out(M.tasks_text()) end),
  }
  for k, v in pairs(self.helpers) do rawset(self.env, k, v) end
end

-- Dot commands: `.help [name]`, `.tasks`, `.exit`.
local commands = {}
function commands.help(self, arg)
  self.io.out(require("async.repl.help").text(arg ~= "" and arg or nil))
  return "done"
end
function commands.tasks(self) self.io.out(M.tasks_text()) return "done" end
function commands.exit() return "exit" end
commands.quit = commands.exit

------------------------------------------------------------- completion

local keywords = {"and", "break", "do", "else", "elseif", "end", "false", "for", "function",
  "goto", "if", "in", "local", "nil", "not", "or", "repeat", "return", "then", "true",
  "until", "while"}

-- Fields of a lazily loading table: the `submodules` and `from_module`
-- tables its __index function closes over (as async's does).
local function lazy_fields(t, add)
  local mt = getmetatable(t)
  local f = type(mt) == "table" and rawget(mt, "__index")
  if type(f) ~= "function" then return end
  for i = 1, 255 do
    local name, v = debug.getupvalue(f, i)
    if not name then break end
    if (name == "submodules" or name == "from_module") and type(v) == "table" then
      for k in pairs(v) do add(k, nil) end
    end
  end
end

-- The names reachable as v.name (or v:name when methods): own keys, then
-- those of the __index chain.
local function fields(v, methods)
  local names = {}
  local function add(k, x)
    if type(k) == "string" and k:match("^[%a_][%w_]*$") and (not methods or x == nil or type(x) == "function") then
      names[k] = true
    end
  end
  for _ = 1, 8 do
    if type(v) == "table" then
      for k, x in next, v do add(k, x) end
      lazy_fields(v, add)
    end
    local mt = getmetatable(v)
    v = type(mt) == "table" and rawget(mt, "__index") or nil
    if type(v) ~= "table" then break end
  end
  return names
end

local function lookup(self, path)
  local v = self.env
  for part in path:gmatch("[^.]+") do
    local ok, x = pcall(function() return v[part] end)
    if not ok or x == nil then return nil end
    v = x
  end
  return v
end

-- complete(word): the completions of `word` (a name, or a path such as
-- "async.qu" or "q:ge"), sorted.
function Session:complete(word)
  local base, sep, part = word:match("^(.*)([.:])([%w_]*)$")
  local names, prefix
  if base then
    local v = base:match("^[%a_][%w_.]*$") and lookup(self, base)
    if v == nil then return {} end
    names, prefix = fields(v, sep == ":"), base .. sep
  else
    part, prefix = word, ""
    names = fields(_G, false)
    for k in pairs(fields(self.env, false)) do names[k] = true end
    for _, k in ipairs(keywords) do names[k] = true end
  end
  local list = {}
  for k in pairs(names) do
    if k:sub(1, #part) == part then list[#list + 1] = prefix .. k end
  end
  table.sort(list)
  return list
end

------------------------------------------------------------------ input

-- feed(line): a line of input. Returns the Task running a complete chunk,
-- or "more" (the chunk goes on), "done" (nothing to run: blank, a syntax
-- error shown, a dot command), or "exit".
function Session:feed(line)
  if #self.lines == 0 then
    local cmd, arg = line:match("^%s*%.(%a+)%s*(.-)%s*$")
    if cmd and commands[cmd] then return commands[cmd](self, arg) end
  end
  self.lines[#self.lines + 1] = line
  local src = concat(self.lines, "\n")
  if not src:find("%S") then self.lines = {} return "done" end
  local fn, how = self:compile(src)
  if not fn and how == "more" then return "more" end
  self.lines = {}
  self.count = self.count + 1                -- chunks are numbered: stdin#1, stdin#2
  if not fn then
    self.io.err(how .. "\n")
    return "done"
  end
  return self:spawn(fn, how)
end

-- reset(): drops a chunk typed in part (Ctrl-C at the prompt).
function Session:reset() self.lines = {} end

-- interrupt(): the line's task is being cancelled by Ctrl-C.
function Session:interrupt() self.interrupted = true end

----------------------------------------------------------- the session

-- new(io): io.out(s) and io.err(s) write the REPL's output; io.chunkname
-- names chunks in messages ("stdin"). Unless io.stdio (the REPL talks on
-- the process's stdout), the session's own `print` writes to io.out. With
-- io.wrap, print and writes to stdout keep off the prompt (wrap_stdio with
-- io.hide and io.shown) until close().
function M.new(io)
  local declared = {}
  local env = setmetatable({}, {
    __index = function(_, k) if declared[k] then return nil end return _G[k] end,
    __newindex = function(t, k, v)
      if declared[k] then rawset(t, k, v) else _G[k] = v end
    end,
  })
  local self = setmetatable({io = io, env = env, lines = {}, count = 0,
                             chunkname = io.chunkname or "stdin"}, Session)
  -- __repl.set(names, ...): a `local` statement at the top level of a chunk.
  self.helper = {set = function(names, ...)
    for i, n in ipairs(names) do
      declared[n] = true
      rawset(env, n, (select(i, ...)))
    end
  end}
  if not io.stdio then
    rawset(env, "print", function(...)
      local n, parts = select("#", ...), {}
      for i = 1, n do parts[i] = tostring((select(i, ...))) end
      io.out(concat(parts, "\t") .. "\n")
    end)
  end
  if io.wrap then M.wrap_stdio(io.hide, io.shown) end
  self:install_helpers()
  return self
end

-- close(): the REPL has stopped.
function Session:close()
  if self.io.wrap then M.unwrap_stdio() end
end

------------------------------------------------ stdout while prompting

-- While the prompt is on the screen, output from tasks must not write over
-- it: wrap_stdio makes print, io.write and the stdout/stderr files' write
-- call hide() first (the C half erases the prompt and draws it again after
-- the loop turn) and shown(text) after, with the last text written.
local saved

function M.wrap_stdio(hide, shown)
  -- Checked now: a wrong one failed only later, in every print.
  local fns = {hide, shown}
  for i = 1, 2 do
    local f = fns[i]
    if type(f) ~= "function" then
      error(("bad argument #%d to 'wrap_stdio' (function expected, got %s)"):format(i, type(f)), 2)
    end
  end
  if saved then return end
  local file_mt = getmetatable(io.stdout).__index
  saved = {print = print, write = io.write, fwrite = file_mt.write}
  local stdout, stderr = io.stdout, io.stderr
  local function last(...)
    local n = select("#", ...)
    local s = n > 0 and select(n, ...)
    return type(s) == "string" and s or type(s) == "number" and tostring(s) or nil
  end
  _G.print = function(...) hide() saved.print(...) shown("\n") end
  io.write = function(...)
    hide()
    local r = pack(saved.write(...))
    shown(last(...))
    return unpack(r, 1, r.n)
  end
  file_mt.write = function(f, ...)
    if f ~= stdout and f ~= stderr then return saved.fwrite(f, ...) end
    hide()
    local r = pack(saved.fwrite(f, ...))
    shown(last(...))
    return unpack(r, 1, r.n)
  end
end

function M.unwrap_stdio()
  if not saved then return end
  _G.print, io.write = saved.print, saved.write
  getmetatable(io.stdout).__index.write = saved.fwrite
  saved = nil
end

return M
