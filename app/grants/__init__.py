"""Credits given, not bought: grants by an organization's admins, and promo codes."""
