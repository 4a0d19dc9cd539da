-- Apparel category pack (docs/rulebook.md#apparel). Checks in the platform's order:
-- type and reason first (not_eligible), then time (window_expired).

local EXCLUDED = { error = "not_eligible",
  message = "This item was made to order or excluded from no-reason returns, so it cannot be returned for this reason." }
local GOODS_BACK = { error = "not_eligible",
  message = "Once shipped, a no-reason or size request cannot be a refund without returning the goods." }
local RETURN_OR_EXCHANGE = { error = "not_eligible",
  message = "After delivery a no-reason or size request must be a return with refund or an exchange." }
local LATE_7 = { error = "window_expired",
  message = "No-reason and size returns must be opened within 7 days of delivery." }
local LATE_15 = { error = "window_expired",
  message = "After-sales requests for this reason must be opened within 15 days of delivery." }

local function eligibility(order, request, now)
  local reason = request.reason
  local no_reason = reason == "no_reason"
  local goods_back = no_reason or reason == "size_fit"

  if goods_back then
    -- Exclusions: custom-made for no_reason and size_fit; no_reason_excluded for no_reason.
    local items = request.items -- each carries its order line's flags
    for i = 1, #items do
      local item = items[i]
      if item.custom_made or (no_reason and item.no_reason_excluded) then return EXCLUDED end
    end

    local t = request.type
    -- Once shipped: no money without the goods back.
    if order.shipped_at ~= nil and (t == "refund_only" or t == "partial_refund") then
      return GOODS_BACK
    end
    local delivered_at = order.delivered_at
    if delivered_at == nil then return true end
    -- After delivery: return with refund or exchange only.
    if t ~= "return_refund" and t ~= "exchange" then return RETURN_OR_EXCHANGE end
    local local_day = as.local_day
    if local_day(now) - local_day(delivered_at) > 7 then return LATE_7 end
    return true
  end

  -- Other reasons: any type, within day 15 after delivery.
  local delivered_at = order.delivered_at
  if delivered_at == nil then return true end
  local local_day = as.local_day
  if local_day(now) - local_day(delivered_at) > 15 then return LATE_15 end
  return true
end

return {
  name = "apparel",
  version = "2",
  categories = { "apparel" },
  eligibility = eligibility,
}
