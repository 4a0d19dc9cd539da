-- Shop S2 tries to refuse every after-sales request and to reject every case at once.
-- Refusing what the platform allows is out of bounds (dropped); an immediate reject is kept
-- only where no earlier layer agreed.
return {
  name = "s2-strict", version = "1",
  eligibility = function(order, request, now)
    return { error = "not_eligible", message = "this shop takes nothing back" }
  end,
  auto_decide = function(case, order, now)
    return { action = "reject", reason = "shop_policy" }
  end,
}
