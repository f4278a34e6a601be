-- async.repl.locals: makes a REPL chunk's top-level locals persist.
--
-- lua.c compiles each line as a chunk of its own, so `local x = 1` is gone
-- by the next line. The REPL instead rewrites the `local` statements at the
-- top level of a chunk (outside any function, do, loop or if block) into
-- calls that store the names in the session's environment table:
--
--   local a, b <const> = f()      ->   __repl.set({"a","b"}, f())
--   local x                       ->   __repl.set({"x"})
--   local function g() ... end    ->   __repl.set({"g"}) function g() ... end
--
-- The right-hand side is evaluated before the names are declared, as in
-- Lua (`local print = print` sees the global). A statement with a `<close>`
-- variable stays a true local of its chunk, so it is closed when the line
-- ends. Everything else (the code inside functions and blocks, comments,
-- line breaks) is copied unchanged, so line numbers in errors stay right.
-- When the chunk has nothing to rewrite, or the rewriter does not follow
-- it, the chunk is used as it was.
local M = {}

local find, sub, byte = string.find, string.sub, string.byte

local keywords = {}
for w in ([[and break do else elseif end false for function goto if in local
  nil not or repeat return then true until while]]):gmatch("%a+") do keywords[w] = true end

local ops3 = {["..."] = true}
local ops2 = {["=="] = true, ["~="] = true, ["<="] = true, [">="] = true, ["<<"] = true,
              [">>"] = true, ["//"] = true, ["::"] = true, [".."] = true}

-- The position after the long bracket opening at i ("[==["), or nil.
local function long_close(src, i)
  local eq = src:match("^%[(=*)%[", i)
  if not eq then return nil end
  local _, e = find(src, "]" .. eq .. "]", i + #eq + 2, true)
  return (e or #src) + 1
end

-- The position after the quoted string opening at i.
local function short_string(src, i)
  local q, j = byte(src, i), i + 1
  while j <= #src do
    local c = byte(src, j)
    if c == 92 then j = j + 2               -- backslash: skip the escaped char
    elseif c == q then return j + 1
    else j = j + 1 end
  end
  return j
end

-- Tokens of src: a list of {kind, text, s = start, e = end}; kinds are
-- "name", "kw", "string", "number", "op", and "eof" last. Comments and
-- whitespace are skipped.
function M.tokens(src)
  local toks, i, n = {}, 1, #src
  local function push(kind, s, e) toks[#toks + 1] = {kind, sub(src, s, e), s = s, e = e} end
  while true do
    i = find(src, "%S", i)
    if not i then break end
    local c = sub(src, i, i)
    if sub(src, i, i + 1) == "--" then
      i = long_close(src, i + 2) or (find(src, "\n", i, true) or n) + 1
    elseif c == "[" and long_close(src, i) then
      local j = long_close(src, i)
      push("string", i, j - 1); i = j
    elseif c == '"' or c == "'" then
      local j = short_string(src, i)
      push("string", i, j - 1); i = j
    elseif find(c, "[%a_]") then
      local _, e = find(src, "^[%w_]*", i + 1)
      local w = sub(src, i, e)
      push(keywords[w] and "kw" or "name", i, e); i = e + 1
    elseif find(c, "%d") or (c == "." and find(src, "^%.%d", i)) then
      local _, e = find(src, "^[%w_%.]*", i)
      while find(src, "^[eEpP][%+%-]", e) and find(src, "^[%+%-][%w_%.]", e + 1) do
        _, e = find(src, "^[%w_%.]*", e + 2)
      end
      push("number", i, e); i = e + 1
    else
      local len = ops3[sub(src, i, i + 2)] and 3 or ops2[sub(src, i, i + 1)] and 2 or 1
      push("op", i, i + len - 1); i = i + len
    end
  end
  toks[#toks + 1] = {"eof", "", s = n + 1, e = n}
  return toks
end

-------------------------------------------------- skipping expressions

local openers = {["function"] = 1, ["do"] = 1, ["if"] = 1, ["repeat"] = 1,
                 ["end"] = -1, ["until"] = -1}
local unops = {["not"] = true, ["-"] = true, ["#"] = true, ["~"] = true}
local binops = {}
for op in ("+ - * / // % ^ .. == ~= < <= > >= and or & | ~ << >>"):gmatch("%S+") do
  binops[op] = true
end
local atoms = {["nil"] = true, ["true"] = true, ["false"] = true, ["..."] = true}

local function is(t, text) return t[1] ~= "string" and t[2] == text end

-- The index after the bracketed run opening at i (open/close: "(" ")").
local function skip_pair(toks, i, open, close)
  local depth = 0
  repeat
    local t = toks[i]
    if t[1] == "eof" then return nil end
    if is(t, open) then depth = depth + 1 elseif is(t, close) then depth = depth - 1 end
    i = i + 1
  until depth == 0
  return i
end

-- The index after the block opened by the keyword at i (function ... end).
local function skip_block(toks, i)
  local depth = 0
  repeat
    local t = toks[i]
    if t[1] == "eof" then return nil end
    if t[1] == "kw" then depth = depth + (openers[t[2]] or 0) end
    i = i + 1
  until depth == 0
  return i
end

local function skip_args(toks, i)
  local t = toks[i]
  if is(t, "(") then return skip_pair(toks, i, "(", ")") end
  if is(t, "{") then return skip_pair(toks, i, "{", "}") end
  if t[1] == "string" then return i + 1 end
  return nil
end

local function skip_simple(toks, i)
  local t = toks[i]
  if t[1] == "number" or t[1] == "string" or atoms[t[2]] then return i + 1 end
  if is(t, "function") then return skip_block(toks, i) end
  if is(t, "{") then return skip_pair(toks, i, "{", "}") end
  if t[1] == "name" then i = i + 1
  elseif is(t, "(") then i = skip_pair(toks, i, "(", ")")
  else return nil end
  while i do                                -- suffixes: .x [k] :m(args) (args)
    t = toks[i]
    if is(t, ".") and toks[i + 1][1] == "name" then i = i + 2
    elseif is(t, "[") then i = skip_pair(toks, i, "[", "]")
    elseif is(t, ":") and toks[i + 1][1] == "name" then i = skip_args(toks, i + 2)
    elseif is(t, "(") or is(t, "{") or t[1] == "string" then i = skip_args(toks, i)
    else return i end
  end
  return nil
end

local function skip_exp(toks, i)
  while toks[i][1] ~= "string" and unops[toks[i][2]] do i = i + 1 end
  i = skip_simple(toks, i)
  while i and toks[i][1] ~= "string" and binops[toks[i][2]] do
    i = i + 1
    while toks[i][1] ~= "string" and unops[toks[i][2]] do i = i + 1 end
    i = skip_simple(toks, i)
  end
  return i
end

local function skip_explist(toks, i)
  i = skip_exp(toks, i)
  while i and is(toks[i], ",") do i = skip_exp(toks, i + 1) end
  return i
end

------------------------------------------------------------ rewriting

-- The `local` statement at i: its names, whether one is <close>, and the
-- index after its name list (and attributes).
local function namelist(toks, i)
  local names, close = {}, false
  i = i + 1
  while true do
    if toks[i][1] ~= "name" then return nil end
    names[#names + 1] = toks[i][2]
    i = i + 1
    if is(toks[i], "<") then
      local attr = toks[i + 1][2]
      if attr == "close" then close = true end
      i = i + 3
    end
    if not is(toks[i], ",") then return names, close, i end
    i = i + 1
  end
end

local function quoted_names(names)
  local q = {}
  for k, n in ipairs(names) do q[k] = ("%q"):format(n) end
  return "{" .. table.concat(q, ",") .. "}"
end

-- Returns the rewritten source and the names it declares, or nil when the
-- chunk has no top-level local (or one the rewriter does not follow).
-- `prefix` names the helper table (a local of the rewritten chunk).
function M.rewrite(src, prefix)
  local toks = M.tokens(src)
  local out, last, depth, i, declared = {}, 1, 0, 1, {}
  while toks[i][1] ~= "eof" do
    local t = toks[i]
    if depth == 0 and is(t, "local") then
      local names, close, j
      if is(toks[i + 1], "function") and toks[i + 2][1] == "name" then
        names, j = {toks[i + 2][2]}, i + 1     -- keep "function g ..." itself
        out[#out + 1] = sub(src, last, t.s - 1) .. prefix .. ".set" .. quoted_names(names) .. " "
        last, i = toks[j].s, j
      else
        names, close, j = namelist(toks, i)
        if not names then return nil end
        if not close then
          local stop, values = j, ""
          if is(toks[j], "=") then
            stop = skip_explist(toks, j + 1)
            if not stop then return nil end
            values = ", " .. sub(src, toks[j + 1].s, toks[stop - 1].e)
          end
          out[#out + 1] = sub(src, last, t.s - 1) .. prefix .. ".set(" .. quoted_names(names)
                          .. values .. ")"
          last, i = toks[stop - 1].e + 1, stop
        else
          i = j
        end
      end
      if not close then for _, n in ipairs(names) do declared[#declared + 1] = n end end
    else
      if t[1] == "kw" then depth = depth + (openers[t[2]] or 0) end
      i = i + 1
    end
  end
  if #declared == 0 then return nil end
  out[#out + 1] = sub(src, last)
  return table.concat(out), declared
end

return M
