"""Training callbacks (placeholder replaced below)."""
