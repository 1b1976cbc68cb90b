"""The platform summary behind GET /api/v1/metrics: the counts (`store`) and who sees what (`service`)."""
