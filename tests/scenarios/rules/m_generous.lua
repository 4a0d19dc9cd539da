-- Shop S1: returns and exchanges for any reason up to day 30 after delivery (UTC+8 days).
return {
  name = "s1-30-day-returns", version = "1",
  eligibility = function(order, request, now)
    if order.delivered_at == nil then return nil end
    if request.type ~= "return_refund" and request.type ~= "exchange" then return nil end
    if as.local_day(now) - as.local_day(order.delivered_at) <= 30 then return true end
    return nil
  end,
}
