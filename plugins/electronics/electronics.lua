-- Electronics category pack (docs/rulebook.md#electronics): IMEI check, 三包 quality remedies by day,
-- warranty extension by completed repairs, inspection of quality and repair returns.

local BAD_IMEI = { error = "bad_request",
  message = "An item's 15-digit serial (IMEI) fails its Luhn check digit." }
local EXCLUDED = { error = "not_eligible",
  message = "This item was bought as excluded from no-reason returns." }
local NOT_ALLOWED_7 = { error = "remedy_not_allowed",
  message = "Within 7 days of delivery a quality claim may ask for a return with refund, an exchange or a repair." }
local NOT_ALLOWED_15 = { error = "remedy_not_allowed",
  message = "From day 8 to day 15 after delivery a quality claim may ask for an exchange or a repair." }
local NOT_ALLOWED_WARRANTY = { error = "remedy_not_allowed",
  message = "From day 16 after delivery until the warranty ends a quality claim may ask for a repair only." }
local EXPIRED = { error = "warranty_expired",
  message = "The warranty of this unit has expired." }

local REMEDY = {
  return_refund = "refund", exchange = "exchange", repair = "repair",
  refund_only = "refund", partial_refund = "refund",
}

-- Luhn check of a string of digits.
local function luhn_ok(s)
  local sum = 0
  local n = #s
  local double = false
  for i = n, 1, -1 do
    local d = string.byte(s, i) - 48
    if double then
      d = d * 2
      if d > 9 then d = d - 9 end
    end
    sum = sum + d
    double = not double
  end
  return sum % 10 == 0
end

local function order_check(order)
  local lines = order.items
  for i = 1, #lines do
    local serial = lines[i].serial
    if type(serial) == "string" and #serial == 15 and not string.find(serial, "%D")
        and not luhn_ok(serial) then
      return BAD_IMEI
    end
  end
  return nil
end

local function eligibility(order, request, now)
  local reason = request.reason

  if reason == "no_reason" then
    local items = request.items -- each carries its order line's flags
    for i = 1, #items do
      if items[i].no_reason_excluded then return EXCLUDED end
    end
    return nil -- the platform's rules decide
  end

  if reason ~= "quality" then return nil end
  local delivered_at = order.delivered_at
  if delivered_at == nil then return nil end

  local t = request.type
  local local_day = as.local_day
  local day = local_day(now) - local_day(delivered_at)

  if day <= 7 then
    if t == "return_refund" or t == "exchange" or t == "repair" then return true end
    return NOT_ALLOWED_7
  end
  if day <= 15 then
    if t == "exchange" or t == "repair" then return true end
    return NOT_ALLOWED_15
  end

  -- Day 16 on: the warranty is extended by completed repairs of the same unit, and two
  -- completed repairs allow an exchange whatever the day.
  local items = request.items
  local cases = order.cases
  local repairs, extension = 0, 0
  for i = 1, #cases do
    local c = cases[i]
    if c.type == "repair" and c.state == "completed" then
      local citems = c.items
      local same = false
      for j = 1, #citems do
        local sku = citems[j].sku
        for k = 1, #items do
          if items[k].sku == sku then same = true break end
        end
        if same then break end
      end
      if same then
        repairs = repairs + 1
        extension = extension + (c.repair_days or 0)
      end
    end
  end

  if t == "exchange" and repairs >= 2 then return true end
  if day > 365 + extension then return EXPIRED end
  if t == "repair" then return true end
  return NOT_ALLOWED_WARRANTY
end

local function inspection(case, order)
  if case.reason == "quality" or case.type == "repair" then return true end
  return nil
end

local function on_inspection(case, order, result, now)
  if result == "no_fault" then return "reject" end
  if result == "fault" then return REMEDY[case.type] end
  return nil
end

return {
  name = "electronics",
  version = "2",
  categories = { "electronics" },
  order_check = order_check,
  eligibility = eligibility,
  inspection = inspection,
  on_inspection = on_inspection,
}
