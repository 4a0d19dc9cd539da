-- Shop S1's refund amounts, per SKU: raising within the cap of docs/rulebook.md#amounts is kept; raising
-- above it or lowering what the platform grants is dropped.
return {
  name = "s1-amounts", version = "1",
  refund_amount = function(case, order)
    local sku = case.items[1].sku
    if sku == "UP" then return case.paid - 2000 end    -- more than requested, below the cap: kept
    if sku == "CAP" then return case.paid end          -- exactly the cap: kept
    if sku == "OVER" then return case.paid + 1 end     -- above the cap: dropped
    if sku == "DOWN" then return case.paid - 1000 end  -- less than the platform: dropped
    return nil
  end,
}
