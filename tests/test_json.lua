-- tests/test_json.lua: async.json, the rules docs/API.md states: round
-- trips, null, arrays (empty and sparse), integers and floats (2^53 and
-- beyond), errors with position and path, nesting limits, UTF-8.
package.path = "tests/?.lua;" .. package.path
local lu = require "luaunit"
local support = require "support"
local json = async.json

TestJson = support.suite({})

function TestJson:test_round_trip()
  local v = {name = "lasync", list = {1, 2, 3}, nested = {a = {b = {true, false}}},
             s = "quote \" backslash \\ newline \n tab \t nul \0 é ✓", f = 1.5}
  lu.assertEquals(json.decode(json.encode(v)), v)
  lu.assertEquals(json.decode('{"a":[1,"x",null,true]}'), {a = {1, "x", json.null, true}})
  lu.assertEquals(json.encode("\1\127"), '"\\u0001\\u007f"')
  lu.assertEquals(json.decode('"\\u00e9\\ud83d\\ude00"'), "é😀")
  lu.assertEquals(json.decode("  42 "), 42)
end

function TestJson:test_null()
  lu.assertEquals(json.encode(json.null), "null")
  lu.assertEquals(json.encode(nil), "null")
  lu.assertEquals(json.encode({1, json.null, 3}), "[1,null,3]")
  lu.assertTrue(json.is_null(json.decode("null")))
  local t = json.decode('{"x":null}')
  lu.assertTrue(t.x == json.null)         -- present, not nil
end

function TestJson:test_empty_and_marked_arrays()
  lu.assertEquals(json.encode({}), "{}")
  lu.assertEquals(json.encode(json.array()), "[]")
  lu.assertEquals(json.encode({list = json.array({})}), '{"list":[]}')
  lu.assertEquals(json.encode(json.array({1, 2})), "[1,2]")
  lu.assertTrue(json.is_array(json.array()))
  -- cjson 2.1 decodes [] and {} alike: an empty plain table.
  lu.assertEquals(json.decode("[]"), {})
  lu.assertEquals(json.decode("{}"), {})
  lu.assertErrorMsgContains("has a metatable already", json.array, setmetatable({}, {}))
  lu.assertErrorMsgContains("table expected", json.array, 3)
end

function TestJson:test_sparse_and_mixed_keys()
  lu.assertErrorMsgContains("sparse array (key 3", json.encode, {[1] = 1, [3] = 3})
  lu.assertEquals(json.encode({[1] = 1, [2] = json.null, [3] = 3}), "[1,null,3]")
  lu.assertEquals(json.decode(json.encode({[1] = "a", x = "b"})), {["1"] = "a", x = "b"})
  lu.assertErrorMsgContains("a table key of type boolean", json.encode, {[true] = 1})
end

function TestJson:test_integers_and_floats()
  lu.assertEquals(json.encode(math.maxinteger), "9223372036854775807")
  lu.assertEquals(json.encode(math.mininteger), "-9223372036854775808")
  lu.assertEquals(json.encode(2^53), "9007199254740992.0")
  lu.assertEquals(json.encode(0.1), "0.1")
  lu.assertEquals(json.encode(1/3), "0.3333333333333333")
  lu.assertEquals(json.encode(3.0), "3.0")
  lu.assertEquals(json.encode(1e300), "1e+300")
  for _, v in ipairs{0.1, 1/3, 1e-300, 123456.789, -2.5e-8} do
    lu.assertEquals(json.decode(json.encode(v)), v)
  end
  -- Integral numbers within 2^53 decode as integers (also written 1.0).
  lu.assertEquals(math.type(json.decode("1")), "integer")
  lu.assertEquals(math.type(json.decode("1.0")), "integer")
  lu.assertEquals(math.type(json.decode("[1.5]")[1]), "float")
  lu.assertEquals(json.decode("9007199254740991"), 9007199254740991)
  lu.assertEquals(math.type(json.decode("9007199254740991")), "integer")
  lu.assertEquals(math.type(json.decode("[-9007199254740991]")[1]), "integer")
  -- Beyond 2^53 they stay floats and lose precision (documented).
  local big = json.decode("9007199254740993")
  lu.assertEquals(math.type(big), "float")
  lu.assertEquals(big, 2^53)
  lu.assertErrorMsgContains("cannot encode NaN", json.encode, {x = 0/0})
  lu.assertErrorMsgContains("cannot encode an infinity", json.encode, {1, math.huge})
end

function TestJson:test_decode_errors_with_position()
  local ok, err = pcall(json.decode, '{"a": [1,2,}')
  lu.assertFalse(ok)
  lu.assertEquals(getmetatable(err), json.Error)
  lu.assertEquals(err.kind, "JSONError")
  lu.assertEquals(err.position, 12)
  lu.assertStrContains(tostring(err), "JSONError: ")
  lu.assertStrContains(err.message, "character 12")
  for _, bad in ipairs{"", "{", "[1,]", "nul", "01", "NaN", "Infinity", '"\\x"', "1 2", '{"a" 1}'} do
    local ok2, e = pcall(json.decode, bad)
    lu.assertFalse(ok2, bad)
    lu.assertEquals(e.kind, "JSONError", bad)
  end
  lu.assertErrorMsgContains("string expected", json.decode, {})
  lu.assertErrorMsgContains("string expected", json.decode)
end

function TestJson:test_encode_errors_name_the_path()
  local ok, err = pcall(function() local s = json.encode({a = {b = {1, 2, {c = print}}}}); return s end)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "cannot encode a function at $.a.b[3].c")
  lu.assertStrContains(err, "test_json.lua")          -- raised at the caller
  lu.assertErrorMsgContains("cannot encode a thread", json.encode, coroutine.create(print))
  lu.assertErrorMsgContains("cannot encode a userdata", json.encode, io.stdout)
  lu.assertErrorMsgContains("table expected", json.encode, 1, 2)
  lu.assertErrorMsgContains("max_depth must be an integer", json.encode, 1, {max_depth = 1.5})
end

function TestJson:test_depth_limits()
  local t = {}
  t.self = t
  lu.assertErrorMsgContains("nested deeper than 1000 levels", json.encode, t)
  local deep = {}
  for _ = 1, 10 do deep = {deep} end
  lu.assertErrorMsgContains("deeper than 5", json.encode, deep, {max_depth = 5})
  lu.assertEquals(#json.encode(deep), 22)
  local ok, err = pcall(json.decode, string.rep("[", 1001) .. string.rep("]", 1001))
  lu.assertFalse(ok)
  lu.assertStrContains(err.message, "nested")
  lu.assertNotNil(json.decode(string.rep("[", 999) .. string.rep("]", 999)))
end

function TestJson:test_invalid_utf8()
  lu.assertErrorMsgContains("invalid UTF-8 in a string at $[2]", json.encode, {"ok", "bad \255"})
  lu.assertErrorMsgContains("invalid UTF-8", json.encode, {["k\192\128"] = 1})   -- overlong
  lu.assertErrorMsgContains("invalid UTF-8", json.encode, "\237\160\128")       -- surrogate
  local ok, err = pcall(json.decode, '["ab\255"]')
  lu.assertFalse(ok)
  lu.assertEquals(err.position, 5)
  lu.assertStrContains(err.message, "invalid UTF-8 at byte 5")
  lu.assertEquals(json.encode("日本"), '"日本"')
end

support.run(...)
