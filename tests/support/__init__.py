"""Helpers shared by test modules; nothing here is collected as a test."""
