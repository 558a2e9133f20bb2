"""Models of the advocacy app (issue 14)."""
