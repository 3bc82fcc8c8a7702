"""Built-in encoders. Each module imports torch at its top, so import them only to build."""
