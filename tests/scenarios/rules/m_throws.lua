-- Shop S1's rules are broken: every hook fails (throws, errors at run time or answers the
-- wrong type). A failing merchant hook never blocks the buyer: its answer is dropped.
return {
  name = "s1-broken", version = "1",
  eligibility = function(order, request, now) error("eligibility exploded") end,
  refund_amount = function(case, order) error({ code = 42 }) end,
  deadlines = function(case, order) local t = nil; return t.merchant_response end,
  priority = function(case, order) return "urgent" end,
  auto_decide = function(case, order, now) error("auto_decide exploded") end,
  instant_refund = function(case, order) error("instant_refund exploded") end,
  inspection = function(case, order) error("inspection exploded") end,
}
