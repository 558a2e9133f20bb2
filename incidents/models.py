"""Models of the incidents app (issue 14)."""
