-- Shop S1 tries to give itself 72h to answer (longer than the platform's 48h: out of bounds,
-- dropped) and gives buyers 10 days to send returns back (longer than 7d: kept).
return {
  name = "s1-slow-response", version = "1",
  deadlines = function(case, order)
    return { merchant_response = 72 * as.HOUR, buyer_ship = 10 * as.DAY }
  end,
}
