-- tests/test_repl.lua: the REPL. Its Lua half in process (compiling,
-- persistent locals, printing, help, completion, the task listing), then
-- the `lasync` command driven through a pipe and through a real
-- pseudo-terminal by tests/pty_drive.py, which synchronises on what the
-- REPL prints, never on delays.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"
local repl = require "async.repl"
local locals = require "async.repl.locals"
local pretty = require "async.repl.pretty"
local help = require "async.repl.help"

local q = support.shell_quote

-- A session whose output (values, errors, print) goes to a list.
local function session()
  local out = {}
  local function w(s) out[#out + 1] = s end
  return repl.new{out = w, err = w, stdio = false, chunkname = "stdin"}, out
end

-- Feeds the lines, waiting for each chunk's task; returns what was printed.
local function feed(s, out, ...)
  for _, line in ipairs{...} do
    local r = s:feed(line)
    if type(r) ~= "string" then r:await() end
  end
  local text = table.concat(out)
  for i = #out, 1, -1 do out[i] = nil end
  return text
end

------------------------------------------------------------- compiling

TestReplChunks = support.suite {}

function TestReplChunks:test_expressions_print_all_their_values()
  local s, out = session()
  lu.assertEquals(feed(s, out, "1, nil, 'x'"), '1, nil, "x"\n')
  lu.assertEquals(feed(s, out, "1 + 1"), "2\n")
  lu.assertEquals(feed(s, out, "=2 * 3"), "6\n")       -- Lua 5.1's "=expr"
  lu.assertEquals(feed(s, out, "(function() end)()"), "")
  lu.assertEquals(feed(s, out, "select('#', nil, nil)"), "2\n")
end

function TestReplChunks:test_statements_print_nothing_but_what_they_print()
  local s, out = session()
  lu.assertEquals(feed(s, out, "for i = 1, 3 do print(i) end"), "1\n2\n3\n")
  lu.assertEquals(feed(s, out, "do return 1, 2 end"), "1, 2\n")
end

function TestReplChunks:test_incomplete_input_waits_for_more()
  local s, out = session()
  local function chunk(lines, want)
    for i = 1, #lines - 1 do lu.assertEquals(s:feed(lines[i]), "more", lines[i]) end
    lu.assertEquals(feed(s, out, lines[#lines]), want)
  end
  chunk({"function f(n)", "  return n * 2", "end"}, "")
  lu.assertEquals(feed(s, out, "f(21)"), "42\n")
  chunk({"do", "  local a = 1", "  print(a + 1)", "end"}, "2\n")
  chunk({"x_long = [[one", "two]]"}, "")
  lu.assertEquals(feed(s, out, "x_long"), '"one\\ntwo"\n')
  chunk({"{1,", " 2}"}, "{1, 2}\n")
  chunk({"print(", "'p')"}, "p\n")
  chunk({"if true then", "print('t')", "else", "end"}, "t\n")
  chunk({"--[[ a long", "comment ]] 5"}, "5\n")
  f, x_long = nil, nil
end

function TestReplChunks:test_syntax_and_runtime_errors_are_shown_and_the_session_goes_on()
  local s, out = session()
  lu.assertEquals(s:feed("1 +* 2"), "done")
  lu.assertStrContains(table.concat(out), "stdin#1:1: unexpected symbol near '*'")
  feed(s, out)
  local text = feed(s, out, "error('boom')")
  lu.assertStrContains(text, "stdin#2:1: boom\nstack traceback:")
  lu.assertStrContains(text, "in main chunk")
  lu.assertNotStrContains(text, "xpcall")             -- the REPL's own frames are cut
  lu.assertNotStrContains(text, "async/repl")
  text = feed(s, out, "error(setmetatable({}, {__tostring = function() return 'custom' end}))")
  lu.assertStrContains(text, "custom")
  lu.assertEquals(feed(s, out, "1"), "1\n")
end

function TestReplChunks:test_waiting_calls_work_at_the_prompt()
  local s, out = session()
  lu.assertEquals(feed(s, out, "local f = async.future()",
                       "local h = async.call_soon(function() f:resolve('later') end)", "f:await()"),
                  '"later"\n')
  lu.assertEquals(feed(s, out, "async.sleep(0.001) return 'slept'"), '"slept"\n')
end

function TestReplChunks:test_dot_commands()
  local s, out = session()
  lu.assertEquals(s:feed(".exit"), "exit")
  lu.assertEquals(s:feed(".tasks"), "done")
  lu.assertStrContains(feed(s, out), "no live tasks")
  lu.assertEquals(feed(s, out, ".5"), "0.5\n")          -- a number, not a command
end

------------------------------------------------------- persistent locals

TestReplLocals = support.suite {}

function TestReplLocals:test_locals_persist_from_line_to_line()
  local s, out = session()
  lu.assertEquals(feed(s, out, "local x = 41", "x + 1"), "42\n")
  lu.assertEquals(feed(s, out, "x = x + 1", "x"), "42\n")
  lu.assertNil(rawget(_G, "x"))                         -- never a global
  lu.assertEquals(feed(s, out, "local a, b <const> = (function() return 1, 2, 3 end)()", "a, b"), "1, 2\n")
end

function TestReplLocals:test_local_functions_recurse_and_closures_share_the_local()
  local s, out = session()
  lu.assertEquals(feed(s, out, "local function fib(n) if n < 2 then return n end return fib(n-1) + fib(n-2) end",
                       "fib(20)"), "6765\n")
  lu.assertEquals(feed(s, out, "local count = 0", "local function inc() count = count + 1 end",
                       "inc(); inc()", "count"), "2\n")
end

function TestReplLocals:test_a_local_is_declared_after_its_values_are_computed()
  local s, out = session()
  lu.assertEquals(feed(s, out, "local type = type", "type(1)"), '"number"\n')
  lu.assertEquals(feed(s, out, "local print = nil", "print"), "nil\n")   -- a nil local shadows
end

function TestReplLocals:test_globals_stay_globals()
  local s, out = session()
  feed(s, out, "repl_test_global = 7")
  lu.assertEquals(rawget(_G, "repl_test_global"), 7)
  repl_test_global = nil
end

function TestReplLocals:test_close_variables_stay_locals_of_their_line()
  local s, out = session()
  lu.assertEquals(feed(s, out,
    "local h <close> = setmetatable({}, {__close = function() print('closed') end}); print('body')",
    "h"), "body\nclosed\nnil\n")
end

function TestReplLocals:test_rewrite_leaves_nested_locals_strings_and_comments()
  local src = table.concat({
    "local s = 'local y = 1' -- local z",
    "do local inner = 1 end",
    "local function g() local k = 2 return k end",
    "local t = {f = function() local u end, 'x'}, obj:m 'a' .. [[local]]",
    "local n"}, "\n")
  local out, names = locals.rewrite(src, "R")
  lu.assertEquals(names, {"s", "g", "t", "n"})
  lu.assertStrContains(out, [[R.set({"s"}, 'local y = 1') -- local z]])
  lu.assertStrContains(out, "do local inner = 1 end")
  lu.assertStrContains(out, [[R.set{"g"} function g() local k = 2 return k end]])
  lu.assertStrContains(out, [[R.set({"t"}, {f = function() local u end, 'x'}, obj:m 'a' .. [[local]] .. "]])")
  lu.assertStrContains(out, [[R.set({"n"})]])
  local _, lines = out:gsub("\n", "")
  lu.assertEquals(lines, 4)                             -- line numbers unchanged
  lu.assertNil(locals.rewrite("x = 1 print(x)", "R"))   -- nothing to rewrite
end

function TestReplLocals:test_rewrite_finds_where_an_expression_list_ends()
  for src, want in pairs{
    ["local a = f(x)(y).z[1]:m{} print(a)"] = [[R.set({"a"}, f(x)(y).z[1]:m{}) print(a)]],
    ["local a = -x ^ 2 + #t .. 'k' local b = 1"] = [[R.set({"a"}, -x ^ 2 + #t .. 'k') R.set({"b"}, 1)]],
    ["local a = not x == y and (z) or 0x1p+4 f()"] = [[R.set({"a"}, not x == y and (z) or 0x1p+4) f()]],
    ["local a = ... return a"] = [[R.set({"a"}, ...) return a]],
  } do
    lu.assertEquals((locals.rewrite(src, "R")), want, src)
  end
end

-- Every Lua file of the project, rewritten as one chunk, still compiles
-- and keeps its line count: the expression skipper follows real code.
function TestReplLocals:test_rewrite_of_every_project_file_compiles()
  local files = 0
  for path in io.popen("find lua tests scripts -name '*.lua'"):lines() do
    local src = support.slurp(path)
    if load(src, "=" .. path) then
      local out = locals.rewrite(src, "__repl")
      if out then
        files = files + 1
        local f, err = load("local __repl = ...; " .. out, "=" .. path)
        lu.assertNotNil(f, err)
        lu.assertEquals(select(2, out:gsub("\n", "")), select(2, src:gsub("\n", "")), path)
      end
    end
  end
  lu.assertTrue(files > 20)
end

---------------------------------------------------------------- printing

TestReplPretty = support.suite {}

function TestReplPretty:test_tables_nest_sort_and_mark_cycles()
  lu.assertEquals(pretty.pretty({1, 2, b = 2, a = {c = true}, [10] = "x"}),
                  '{1, 2, [10] = "x", a = {c = true}, b = 2}')
  local t = {name = "t"}
  t.self = t
  lu.assertStrMatches(pretty.pretty(t), '{name = "t", self = <cycle table: 0x%x+>}')
  lu.assertEquals(pretty.pretty({{{{{1}}}}}), "{{{{{...}}}}}")
  lu.assertEquals(pretty.pretty({["a b"] = 1, ["end"] = 2}), '{["a b"] = 1, ["end"] = 2}')
  lu.assertEquals(pretty.pretty({}), "{}")
end

function TestReplPretty:test_long_tables_break_into_indented_lines()
  local t = {}
  for i = 1, 30 do t["key" .. i] = i end
  local text = pretty.pretty({inner = t})
  lu.assertStrContains(text, "{\n  inner = {\n    key1 = 1,\n    key10 = 10,")
  lu.assertStrContains(text, "\n  }\n}")
end

function TestReplPretty:test_strings_functions_tasks_and_futures()
  lu.assertEquals(pretty.pretty("a\n\"b\"\0"), '"a\\n\\"b\\"\\0"')
  lu.assertStrMatches(pretty.pretty(print), "builtin: 0x%x+")
  lu.assertStrMatches(pretty.pretty(function() end), "function: 0x%x+ %(.*test_repl.lua:%d+%)")
  local t = async.spawn(function() end):set_name("named")
  lu.assertEquals(pretty.pretty(t), "Task<named ready>")
  t:await()
  lu.assertEquals(pretty.values(2, t, async.future()), "Task<named done>, Future<pending>")
  lu.assertStrContains(pretty.pretty(async.Cancelled), "__tostring")  -- a class table, not an error
end

function TestReplPretty:test_many_items_are_cut()
  local t = {}
  for i = 1, 150 do t[i] = i end
  lu.assertStrContains(pretty.pretty(t), "... (50 more)")
end

----------------------------------------------------- helpers, completion

TestReplHelpers = support.suite {}

function TestReplHelpers:test_help_prints_the_reference_of_a_value()
  local text = help.text(async.gather)
  lu.assertStrContains(text, "### async.gather(...)")
  lu.assertNotStrContains(text, "### async.settle")     -- one section
  lu.assertStrContains(help.text("sleep"), "### async.sleep(sec)")
  local t = async.spawn(function() end)
  lu.assertStrContains(help.text(t.cancel), "t:cancel([msg])")
  t:await()
  lu.assertStrContains(help.text("q:get"), "q:get()")
  lu.assertStrContains(help.text(), "sections:")
  lu.assertStrContains(help.text(), "Tasks")
  lu.assertStrContains(help.text("no such thing at all"), "nothing about")
end

function TestReplHelpers:test_help_and_tasks_at_the_prompt()
  local s, out = session()
  lu.assertStrContains(feed(s, out, "help(async.spawn)"), "### async.spawn(fn, ...)")
  lu.assertStrContains(feed(s, out, "help"), "sections:")       -- typed alone, shown
  local text = feed(s, out, "local bg = async.spawn(function() async.sleep(30) end):set_name('sleeper')",
                    "async.sleep(0)", "tasks()")
  lu.assertStrMatches(text, ".*live tasks?:\n.*sleeper%s+waiting%s+sleep %(timed%)%s+stdin#3:1\n.*")
  lu.assertNotStrContains(text, "stdin#5")                -- not the line asking
  feed(s, out, "bg:cancel()", "async.settle(bg)")
end

function TestReplHelpers:test_completion_of_globals_fields_and_methods()
  local s, out = session()
  lu.assertEquals(s:complete("async.qu"), {"async.queue"})        -- loaded lazily
  lu.assertEquals(s:complete("string.fo"), {"string.format"})
  lu.assertItemsEquals(s:complete("pri"), {"print"})
  lu.assertEquals(s:complete("whi"), {"while"})
  feed(s, out, "local my_queue = async.queue()")
  lu.assertEquals(s:complete("my_q"), {"my_queue"})
  local m = s:complete("my_queue:ge")
  lu.assertEquals(m, {"my_queue:get", "my_queue:get_nowait"})
  lu.assertEquals(s:complete("nothing_here."), {})
end

------------------------------------------------------ the lasync command

local PY = io.open("/usr/bin/python3") and "/usr/bin/python3" or "python3"

-- Runs lasync under tests/pty_drive.py with the steps (a list of lines);
-- returns support.sh's result (status 0 when every step passed).
local function drive(steps, opts)
  opts = opts or {}
  local path = os.tmpname()
  support.write_file(path, table.concat(steps, "\n") .. "\n")
  local env = ("LASYNC_HISTORY=%s "):format(q(opts.history or "")) .. (opts.env or "")
  local r = support.sh(env .. PY .. " tests/pty_drive.py " .. (opts.pipe and "--pipe " or "")
                       .. q(path) .. " -- " .. q(support.LASYNC) .. " " .. (opts.args or "-i"))
  os.remove(path)
  return r
end

local function check(r)
  lu.assertEquals(r.status, 0, r.stdout .. r.stderr)
  return r.stdout
end

local ticker = [[send local n = 0; ticker = async.spawn(function() while true do n = n + 1; ]]
  .. [[print("tick " .. n); async.sleep(0.05) end end):set_name("ticker")\n]]

TestReplPipe = support.suite({}, 30)

function TestReplPipe:test_background_task_prints_while_the_repl_waits()
  local out = check(drive({ticker, "expect tick 3", "send n >= 3\\n", "expect true",
                           "expect tick 6", "close", "expect cancelled 1 background task",
                           "expect-exit 0"}, {pipe = true}))
  lu.assertNotStrContains(out, "> ")                     -- no prompts on a pipe
end

function TestReplPipe:test_sleep_and_await_at_the_prompt()
  check(drive({"send async.sleep(0.01); print('after sleep')\\n", "expect after sleep",
               [[send local t = async.spawn(function() async.sleep(0.01) return 'r' end)\n]],
               "send t:await()\\n", 'expect "r"', "close", "expect-exit 0"}, {pipe = true}))
end

function TestReplPipe:test_interrupt_cancels_the_running_line_and_its_cleanup_runs()
  local out = check(drive({
    [[send local c <close> = setmetatable({}, {__close = function() print("cleanup ran") end}); ]]
      .. [[print("sleeping"); async.sleep(100)\n]],
    "expect sleeping", "signal INT", "expect cleanup ran", "expect Cancelled: interrupted",
    "send print('next line')\\n", "expect next line", "close", "expect-exit 0"}, {pipe = true}))
  lu.assertNotStrContains(out, "background task")        -- the line's task is over
end

-- A line that swallows the Cancelled is left to run on a second ^C: the
-- REPL takes input again and the task is listed among the live ones.
function TestReplPipe:test_second_interrupt_leaves_a_stubborn_line_running()
  check(drive({[[send print("start"); while not stop do local ok = pcall(async.sleep, 100); ]]
                 .. [[print("line caught", ok) end\n]],
               "expect start", "signal INT", "expect line caught\\tfalse", "signal INT",
               "expect goes on in the background", "send tasks()\\n", "expect stdin#1 +waiting",
               [[send stop = true; for _, i in ipairs(async.tasks()) do if i.name == "stdin#1" ]]
                 .. [[then i.task:cancel() end end\n]],
               "expect line caught", "send async.sleep(0); tasks()\\n",
               "expect no live tasks", "close", "expect-exit 0"}, {pipe = true}))
end

function TestReplPipe:test_input_from_a_file_or_dev_null()
  local path = os.tmpname()
  support.write_file(path, "local x = 20\nasync.sleep(0.001)\nx * 2")   -- no final newline
  local r = support.sh(q(support.LASYNC) .. " -i < " .. q(path))
  os.remove(path)
  lu.assertEquals(r.status, 0, r.stderr)
  lu.assertEquals(r.stdout, "40\n")
  r = support.sh(q(support.LASYNC) .. " -i < /dev/null")
  lu.assertEquals(r.status, 0, r.stderr)
  lu.assertEquals(r.stdout .. r.stderr, "")
end

function TestReplPipe:test_end_of_input_cancels_background_tasks_and_their_cleanup_runs()
  check(drive({[[send bg = async.spawn(function() local ok = pcall(async.sleep, 100) ]]
                 .. [[print("bg cleanup", ok) end)\n]],
               "send async.sleep(0)\\n", "close", "expect bg cleanup\\tfalse",
               "expect lasync: cancelled 1 background task\\n", "expect-exit 0"}, {pipe = true}))
end

function TestReplPipe:test_multi_line_definitions_locals_and_errors()
  check(drive({"send local function fact(n)\\n", "send   if n <= 1 then return 1 end\\n",
               "send   return n * fact(n - 1)\\n", "send end\\n", "send fact(10)\\n",
               "expect 3628800", "send error('oops')\\n", "expect stdin#3:1: oops",
               "expect stack traceback", "send fact(5)\\n", "expect 120",
               "close", "expect-exit 0"}, {pipe = true}))
end

function TestReplPipe:test_after_a_script_its_tasks_live_on()
  local script = os.tmpname() .. ".lua"
  support.write_file(script, [[
    from_script = "visible"
    server_task = async.spawn(function() async.sleep(100) end):set_name("from-script")
  ]])
  local out = check(drive({"send from_script\\n", 'expect "visible"', "send tasks()\\n",
                           "expect from-script", "close", "expect cancelled 1 background task",
                           "expect-exit 0"},
                          {pipe = true, args = "-i " .. q(script)}))
  os.remove(script)
  lu.assertStrContains(out, "from-script")
end

function TestReplPipe:test_piped_stdin_without_i_runs_as_a_script()
  local r = support.sh("printf 'local x = 1\\nprint(x + 1)\\n' | " .. q(support.LASYNC))
  lu.assertEquals(r.status, 0, r.stderr)
  lu.assertEquals(r.stdout, "2\n")
end

function TestReplPipe:test_tcp_server_answers_while_the_prompt_waits()
  if not pcall(require, "async.net") then lu.skip("no async.net") end
  check(drive({[[send srv = async.net.listen("127.0.0.1", 0, function(c) ]]
                 .. [[c:write("echo " .. c:read_line() .. "\\n") end)\n]],
               "send print('port ' .. select(2, srv:address()))\\n", "expect port (\\d+)\\n",
               "tcp hello\\n", "expect \\[tcp\\] echo hello", "tcp again\\n",
               "expect \\[tcp\\] echo again", "send srv:close()\\n", "close", "expect-exit 0"},
              {pipe = true}))
end

TestReplTerminal = support.suite({}, 30)

-- SIGTERM at the prompt: the REPL puts the terminal back (libedit keeps it
-- raw at the prompt), background tasks are cancelled, the status is 143.
function TestReplTerminal:test_sigterm_at_the_prompt_ends_it_cleanly()
  check(drive({"expect > $", [[send bg = async.spawn(function() async.sleep(100) end)\r]],
               "expect > $", "signal TERM", "expect cancelled 1 background task",
               "expect-exit 143"}))
end

function TestReplTerminal:test_prompt_and_background_output_do_not_garble_the_line()
  local out = check(drive({"expect > $", ticker, "expect tick 2", "send local ab",
                           "expect tick 4.*> local ab$", "send c = 'forty-two'\\r", "expect \\n> $",
                           "send abc\\r", 'expect "forty-two"', "expect > $", "send \\x04",
                           "expect cancelled 1 background task", "expect-exit 0"}, {args = ""}))
  -- each tick erased the prompt and the partial line and drew them again below
  lu.assertStrContains(out, "> local ab\r\27[Jtick")
end

function TestReplTerminal:test_ctrl_c_cancels_a_sleep_and_the_prompt_returns()
  local out = check(drive({"expect > $",
    [[send local c <close> = setmetatable({}, {__close = function() print("cleanup " .. "ran") end}); ]]
      .. [[print("slee" .. "ping"); async.sleep(100)\r]],
    "expect sleeping", "send \\x03", "expect cleanup ran", "expect Cancelled: interrupted",
    "expect > $", "send 1 + 1\\r", "expect 2", "expect > $", "send \\x04", "expect-exit 0"},
    {args = ""}))
  lu.assertNotStrContains(out, "background task")
end

function TestReplTerminal:test_ctrl_c_at_the_prompt_drops_the_chunk()
  check(drive({"expect > $", "send function f()\\r", "expect >> $", "send \\x03",
               "expect \\n> $", "send 'fresh'\\r", 'expect "fresh"', "expect > $", "send \\x04",
               "expect-exit 0"}, {args = ""}))
end

function TestReplTerminal:test_multi_line_definition_and_locals()
  check(drive({"expect > $", "send local function sq(n)\\r", "expect >> $",
               "send return n * n\\r", "expect >> $", "send end\\r", "expect \\n> $",
               "send local k = sq(9)\\r", "expect > $", "send k + 1\\r", "expect 82",
               "expect > $", "send \\x04", "expect-exit 0"}, {args = ""}))
end

function TestReplTerminal:test_tab_completes_a_table_field()
  check(drive({"expect > $", "send async.qu\\t", "expect eue", "send ()\\r",
               "expect Queue<0>", "expect > $", "send \\x04", "expect-exit 0"}, {args = ""}))
end

function TestReplTerminal:test_history_is_written_and_read_back()
  local hist = os.tmpname()
  os.remove(hist)
  check(drive({"expect > $", "send 'remember ' .. 6 * 7\\r", 'expect "remember 42"',
               "expect > $", "send \\x04", "expect-exit 0"}, {args = "", history = hist}))
  lu.assertStrContains(support.slurp(hist), "remember")
  -- the next session: Up brings the line back
  check(drive({"expect > $", "send \\x1b[A", "expect remember ' \\.\\. 6 \\* 7", "send \\r",
               'expect "remember 42"', "expect > $", "send \\x04", "expect-exit 0"},
              {args = "", history = hist}))
  os.remove(hist)
end

-- Keys typed ahead, at full speed, while the REPL is still taking the
-- previous line or while a line runs, are all kept, in order.
function TestReplTerminal:test_typed_ahead_lines_are_kept()
  check(drive({"expect > $", "send function f(a)\\r", "send return a * 3\\r", "send end\\r",
               "send f(2) .. 'x'\\r", 'expect "6x"', "expect > $",
               "send async.sleep(0.05)\\r", "send function g(a)\\rreturn a + 1\\rend\\r",
               "send g(41) .. 'y'\\r", 'expect "42y"', "expect > $",
               "send \\x04", "expect-exit 0"}, {args = ""}))
end

-- At the prompt a background task that fails is reported at once, with its
-- traceback (not at the next garbage collection).
function TestReplTerminal:test_background_failure_is_reported_at_once()
  check(drive({"expect > $", [[send bg = async.spawn(function() error("bg " .. "boom") end)\r]],
               "expect failed and nobody awaited it: stdin#1:1: bg boom",
               "expect stack traceback", "expect in function <stdin#1:1>",
               "send \\x04", "expect-exit 0"}, {args = ""}))
end

-- t:await() at the prompt shows the task's own traceback too, as a script's
-- report does; `_` is the last value; an error table prints as a value.
function TestReplTerminal:test_await_traceback_last_value_and_error_tables()
  check(drive({"expect > $",
               [[send local t = async.spawn(function() async.sleep(0) error("in " .. "task") end)\r]],
               "expect > $", "send t:await()\\r", "expect stdin#2:1: in main chunk",
               "expect re-raised from task-", "expect in function <stdin#1:1>", "expect > $",
               "send 6 * 7\\r", "expect 42", "expect > $", "send _ + 1\\r", "expect 43",
               "expect > $", "send error({code = 5})\\r", "expect error: {code = 5}",
               "expect > $", "send \\x04", "expect-exit 0"}, {args = ""}))
end

-- print keeps its face (the REPL wraps it to keep output off the prompt),
-- a prompt local is named as one in tracebacks, help covers standard Lua.
function TestReplTerminal:test_print_locals_in_tracebacks_and_standard_help()
  local out = check(drive({"expect > $", "send print\\r", "expect builtin: 0x", "expect > $",
               "send local function boom() error('b' .. 'oom') end\\r", "expect > $",
               "send local function outer() boom() return 1 end\\r", "expect > $",
               "send outer()\\r", "expect in local 'boom'", "expect > $",
               "send help(string.format)\\r", "expect printf-style", "expect > $",
               [[send help "ipairs"\r]], "expect iterates i, t\\[i\\]", "expect > $",
               "send \\x04", "expect-exit 0"}, {args = ""}))
  lu.assertNotStrContains(out, "repl.lua")
  lu.assertNotStrContains(out, "in global 'boom'")
end

-- A background progress bar ("\r20%" without a newline) stays on its line:
-- each update goes back to the end of the partial line above the prompt.
function TestReplTerminal:test_partial_lines_from_the_background_stay_together()
  local out = check(drive({"expect > $",
    [[send async.spawn(function() for i = 1, 3 do io.write("\\rprogress " .. i * 10 .. "%") ]]
      .. [[async.sleep(0.02) end io.write(" done\\n") end)\r]],
    "expect progress 30%", "expect done", "expect > $", "send \\x04", "expect-exit 0"},
    {args = ""}))
  -- after the first update the prompt was drawn below the partial line; the
  -- next update erased the prompt, went up to column 13 and rewrote the line
  lu.assertStrContains(out, "\27[1A\27[13G\rprogress 20%")
  lu.assertStrContains(out, "\27[1A\27[13G done")
end

-- Long help goes through the pager on a terminal; short help does not.
function TestReplTerminal:test_long_help_goes_through_the_pager()
  local out = check(drive({"expect > $", [[send help "Tasks"\r]], "expect PAGED:", "expect > $",
                           [[send help "ipairs"\r]], "expect iterates", "expect > $",
                           "send \\x04", "expect-exit 0"},
                          {args = "", env = "LINES=24 PAGER='sed s/^/PAGED:/' "}))
  lu.assertNotStrContains(out, "PAGED:ipairs")
end

support.run(...)
