-- The merchant layer of the 3-layer engine bench: a shop that answers within a day and
-- gives loyal buyers longer to send returns back (both within docs/rulebook.md#merchant-bounds).
local FAST = { merchant_response = 24 * as.HOUR }
local LOYAL = { merchant_response = 24 * as.HOUR, buyer_ship = 10 * as.DAY }
return {
  name = "bench-merchant", version = "1",
  deadlines = function(case, order)
    if (order.buyer_credit or 0) >= 750 then return LOYAL end
    return FAST
  end,
}
