"""Models of the goodwill app (issue 14)."""
