-- Fresh food category pack (docs/rulebook.md#fresh-food).

local HOUR = 3600 * 1000 -- same value as as.HOUR

local DEADLINES = { merchant_response = 24 * HOUR }
local WINDOW = 48 * HOUR
local WINDOW_LIVE = 12 * HOUR

-- the why the case history shows beside the agreement (docs/design.md#provenance)
local AGREE = { action = "agree",
  why = "a claim of at most 50 yuan with evidence: fresh food cannot wait for a reply" }

local NO_PERMILLE = { error = "bad_request",
  message = "A partial refund of fresh food must give the spoiled share (bad_permille, 1 to 1000)." }
local NO_REASON = { error = "not_eligible",
  message = "Fresh food cannot be returned without a reason once it has shipped." }
local NOT_SENT_BACK = { error = "not_eligible",
  message = "Fresh food is not sent back: ask for a refund, a partial refund or a reshipment." }
local LATE = { error = "window_expired",
  message = "Fresh food claims must be opened within 48 hours of delivery." }
local LATE_LIVE = { error = "window_expired",
  message = "Claims on live goods must be opened within 12 hours of delivery." }
local NO_EVIDENCE = { error = "evidence_required",
  message = "Fresh food claims need a photo of the goods." }

local function eligibility(order, request, now)
  local t = request.type
  if t == "partial_refund" and request.bad_permille == nil then return NO_PERMILLE end
  if request.reason == "no_reason" and order.shipped_at ~= nil then return NO_REASON end
  if t == "return_refund" or t == "exchange" or t == "repair" then return NOT_SENT_BACK end

  local delivered_at = order.delivered_at
  if delivered_at ~= nil then
    local elapsed = now - delivered_at
    if elapsed > WINDOW_LIVE then
      if elapsed > WINDOW then return LATE end
      -- Between 12h and 48h: too late only if one of the case's items is live.
      local items = request.items -- each carries its order line's flags
      for i = 1, #items do
        if items[i].live then return LATE_LIVE end
      end
    end
  end

  local evidence = request.evidence
  if evidence == nil or #evidence == 0 then return NO_EVIDENCE end
  return true
end

local function deadlines(case, order)
  return DEADLINES
end

local function refund_amount(case, order)
  local t = case.type
  if t == "partial_refund" then
    local permille = case.bad_permille
    if permille == nil then return nil end
    local paid = case.paid
    if permille > 700 then return paid end
    return (paid * permille) // 1000
  end
  if t == "refund_only" then return case.paid + case.shipping_fee end
  return nil
end

local function auto_decide(case, order, now)
  local t = case.type
  if t ~= "refund_only" and t ~= "partial_refund" then return nil end
  local amount = case.refund_amount
  if amount == nil or amount > 5000 then return nil end
  local evidence = case.evidence
  if evidence == nil or #evidence == 0 then return nil end
  return AGREE
end

return {
  name = "fresh_food",
  version = "4",
  categories = { "fresh_food" },
  eligibility = eligibility,
  deadlines = deadlines,
  refund_amount = refund_amount,
  auto_decide = auto_decide,
}
