"""Plans and credit policy: the catalog, subscriptions, allocations, rollover, unlock tiers."""
