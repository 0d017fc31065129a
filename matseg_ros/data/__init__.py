"""Dataset tools: augmentation, synthetic masks, scraping, validation, splits, synthetic scenes."""
