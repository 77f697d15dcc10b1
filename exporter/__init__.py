"""GPU power exporter: backends → sampler → store → collector (/metrics) and recorder (CSV/JSON)."""
