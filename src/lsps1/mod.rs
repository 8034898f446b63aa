//! LSPS1 order service: pricing, orders, coupons, and the bLIP-50 guard in front of the liquidity manager.
