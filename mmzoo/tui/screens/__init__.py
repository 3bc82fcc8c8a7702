"""Provides the TUI's screens: zoo, train, runs and export, one per module."""
