"""The price book: versioned rate cards and the exact charge for each usage record."""
