"""Provides the built-in fusion strategies; each module imports torch, so import them only to build."""
