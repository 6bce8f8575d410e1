"""Loopline: one YAML spec for a model's life, run locally, on DVC, Airflow or Kubeflow."""

__version__ = "0.1.0"
