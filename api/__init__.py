"""The prediction API: POST /predict and /labels on the live models (``python -m api``)."""
