-- The same merchant rules as merchant.lua, written the naive way: a fresh table per call.
-- The bench reports it separately (engine.transitions_per_sec_3_layers_alloc) to show what
-- per-call allocation costs across many small Lua states.
return {
  name = "bench-merchant-alloc", version = "1",
  deadlines = function(case, order)
    if (order.buyer_credit or 0) >= 750 then
      return { merchant_response = 24 * as.HOUR, buyer_ship = 10 * as.DAY }
    end
    return { merchant_response = 24 * as.HOUR }
  end,
}
