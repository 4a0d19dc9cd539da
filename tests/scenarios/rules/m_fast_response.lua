-- Shop S2 answers within 24h (shorter: kept), gives buyers only 3 days to ship returns
-- (shorter than 7d: dropped) and 10 days to escalate (longer than 7d: kept).
return {
  name = "s2-fast-response", version = "1",
  deadlines = function(case, order)
    return { merchant_response = 24 * as.HOUR, buyer_ship = 3 * as.DAY,
             escalation_window = 10 * as.DAY }
  end,
}
