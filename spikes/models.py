"""Models of the spikes app (issue 14)."""
