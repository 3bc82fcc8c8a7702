"""Provides the ensemble combiners; each module imports torch, so import them only to build (meta.py is torch-free)."""
