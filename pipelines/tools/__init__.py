"""Tools about the environment, not the pipelines (`make verify-env`)."""
