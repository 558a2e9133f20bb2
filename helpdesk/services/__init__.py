"""Business rules of the care core, one module per sub-domain. Every interface (the
REST API, the pages, admin actions, tasks, commands) calls these."""
