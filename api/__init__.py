"""HTTP layer: FastAPI routes, dashboard pages and badges."""
