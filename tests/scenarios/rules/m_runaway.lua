-- Shop S1's rules never finish. The instruction budget must stop each call, even inside the
-- script's own pcall and inside a long-running C string function; the answers are dropped.
return {
  name = "s1-runaway", version = "1",
  eligibility = function(order, request, now)
    while true do end
  end,
  auto_decide = function(case, order, now)
    pcall(function() while true do end end)
    return { action = "reject", reason = "must_never_apply" }
  end,
  refund_amount = function(case, order)
    local s = string.rep("a", 5000)
    pcall(string.find, s, ".-.-.-.-.-b")
    return case.paid - 1000  -- a raise within the cap: kept, were the call to finish
  end,
}
