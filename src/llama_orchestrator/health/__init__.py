"""Health probes (L3): HTTP checks of one llama-server, returning results, deciding nothing."""
