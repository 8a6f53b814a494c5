"""Models from Hugging Face: which files a `owner/repo[:quant]` means (choice) and fetching them (download)."""
