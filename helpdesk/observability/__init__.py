"""Operating Earshot: readiness, queue depths, structured logs and request ids.

The metrics themselves and their hooks live in helpdesk.metrics.
"""
