"""Model destinations."""
