"""Reports: MLflow results -> model selection -> paper-style ID/OOD tables and plots (see the reports issue)."""
