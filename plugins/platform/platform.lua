-- Platform layer (docs/rulebook.md, eligibility to priority): stage-2 eligibility policy, default deadlines,
-- refund amounts, worklist priority, instant refund and inspection outcomes.
-- Integer math only; hooks are pure functions of their arguments.

local HOUR = 3600 * 1000 -- same value as as.HOUR
local DAY = 24 * HOUR    -- same value as as.DAY

-- docs/rulebook.md#deadlines, built once and returned as is.
local DEADLINES = {
  merchant_response = 48 * HOUR,
  buyer_response    = 48 * HOUR,
  escalation_window = 7 * DAY,
  buyer_ship        = 7 * DAY,
  merchant_receive  = 10 * DAY,
  inspection        = 72 * HOUR,
  merchant_ship     = 72 * HOUR,
  repair            = 30 * DAY,
  buyer_confirm     = 10 * DAY,
}

-- Refusals are constant: build them once.
local EXCLUDED = { error = "not_eligible",
  message = "This item was bought as custom-made or excluded from no-reason returns, so it cannot be returned without a reason." }
local GOODS_BACK = { error = "not_eligible",
  message = "After delivery a no-reason or size return must be a return with refund or an exchange: no money without the goods back." }
local LATE_7 = { error = "window_expired",
  message = "No-reason and size returns must be opened within 7 days of delivery." }
local LATE_15 = { error = "window_expired",
  message = "After-sales requests for this reason must be opened within 15 days of delivery." }

-- Reasons that are the merchant's fault: return shipping is refunded (docs/rulebook.md#amounts).
local MERCHANT_FAULT = {
  quality = true, not_as_described = true, wrong_item = true, damaged_in_transit = true,
}

-- docs/rulebook.md#priority, lower first.
local PRIORITY = {
  quality = 1, spoiled = 1, damaged_in_transit = 1, not_as_described = 1,
  wrong_item = 2, missing_item = 2,
  not_received = 3, late_delivery = 3,
  no_reason = 4, size_fit = 4,
}

-- The remedy each type asks for, when an inspection finds a fault.
local REMEDY = {
  return_refund = "refund", exchange = "exchange", repair = "repair",
  refund_only = "refund", partial_refund = "refund",
}

local function eligibility(order, request, now)
  local reason = request.reason
  local no_reason = reason == "no_reason"
  local goods_back = no_reason or reason == "size_fit"

  -- #1: no_reason and an item custom-made or excluded from no-reason returns.
  if no_reason then
    local items = request.items -- each carries its order line's flags
    for i = 1, #items do
      local item = items[i]
      if item.custom_made or item.no_reason_excluded then return EXCLUDED end
    end
  end

  -- Windows and the goods-back rule apply only once delivered.
  local delivered_at = order.delivered_at
  if delivered_at == nil then return true end

  -- #2: no money without the goods back.
  if goods_back then
    local t = request.type
    if t ~= "return_refund" and t ~= "exchange" then return GOODS_BACK end
  end

  -- #3, #4: windows by the local day after delivery.
  local local_day = as.local_day
  local day = local_day(now) - local_day(delivered_at)
  if goods_back then
    if day > 7 then return LATE_7 end
  elseif day > 15 then
    return LATE_15
  end
  return true
end

local function deadlines(case, order)
  return DEADLINES
end

-- docs/rulebook.md#amounts: the whole refund as it stands, the shipping fee (case.shipping_fee: the
-- order's fee when it goes back with this case now, else 0) and return shipping included
-- where they apply.
local function refund_amount(case, order)
  local t = case.type
  local paid = case.paid
  if t == "partial_refund" then
    local requested = case.requested_amount
    if requested ~= nil then return requested end
    return paid
  end
  local amount = paid + case.shipping_fee
  if MERCHANT_FAULT[case.reason] then
    amount = amount + (case.return_shipping or 0)
  end
  return amount
end

local function priority(case, order)
  return PRIORITY[case.reason]
end

local function instant_refund(case, order)
  if case.type ~= "return_refund" then return nil end
  local credit = order.buyer_credit
  if credit == nil or credit < 600 then return nil end
  local amount = case.refund_amount
  if amount == nil or amount > 150000 then return nil end
  if case.needs_inspection then return nil end
  return true
end

local function on_inspection(case, order, result, now)
  if result == "no_fault" then return "reject" end
  if result == "fault" then return REMEDY[case.type] end
  return nil
end

return {
  name = "platform",
  version = "3",
  eligibility = eligibility,
  deadlines = deadlines,
  refund_amount = refund_amount,
  priority = priority,
  instant_refund = instant_refund,
  on_inspection = on_inspection,
}
