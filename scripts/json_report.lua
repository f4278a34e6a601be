-- scripts/json_report.lua: async.json at work. Reads a JSON document of
-- orders (as an HTTP API would return it), totals them per customer, and
-- writes the report back as JSON: nulls kept, an empty list sent as [],
-- integer ids staying integers. Checks its own result.
local json = async.json

local orders_text = [[
{"orders": [
  {"id": 1001, "customer": "ada",   "items": [{"sku": "A1", "qty": 2, "price": 9.5}], "coupon": null},
  {"id": 1002, "customer": "grace", "items": [{"sku": "B7", "qty": 1, "price": 120.0}], "coupon": "WELCOME"},
  {"id": 1003, "customer": "ada",   "items": [], "coupon": null},
  {"id": 1004, "customer": "linus", "items": [{"sku": "A1", "qty": 10, "price": 9.5},
                                              {"sku": "C3", "qty": 1, "price": 0.25}], "coupon": null}
], "next": null}]]

local doc = json.decode(orders_text)
local per = {}
for _, o in ipairs(doc.orders) do
  local c = per[o.customer] or {customer = o.customer, orders = json.array(), total = 0.0,
                                coupons = json.array()}
  per[o.customer] = c
  table.insert(c.orders, o.id)
  for _, it in ipairs(o.items) do c.total = c.total + it.qty * it.price end
  if o.coupon ~= json.null then table.insert(c.coupons, o.coupon) end
end
local report = json.array()
for _, name in ipairs{"ada", "grace", "linus"} do report[#report + 1] = per[name] end
local out = json.encode({report = report, source_next = doc.next})

-- The report reads back as what was meant.
local back = json.decode(out)
assert(math.type(back.report[1].orders[1]) == "integer" and back.report[1].orders[2] == 1003)
assert(back.report[1].total == 19.0 and back.report[3].total == 95.25)
assert(out:find('"coupons":[]', 1, true), "empty coupon lists go out as []")
assert(back.source_next == json.null)
-- A bad document is refused with the place it went wrong.
local ok, err = pcall(json.decode, '{"orders": [1, 2,, 3]}')
assert(not ok and err.position == 18, tostring(err))
for _, c in ipairs(back.report) do
  print(string.format("%-6s orders=%-12s total=%7.2f", c.customer,
                      table.concat(c.orders, ","), c.total))
end
