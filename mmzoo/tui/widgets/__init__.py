"""Provides the TUI's reusable widgets: details text, curves, heatmaps and half-block images."""
