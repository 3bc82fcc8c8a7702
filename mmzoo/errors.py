"""Provides mmzoo's user-facing errors: each says what failed, where, and what to do."""

from __future__ import annotations


class MmzooError(Exception):
    """Base of every error mmzoo shows to users; the CLI prints it without a traceback."""

    title = "error"

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class RegistryError(MmzooError):
    """registry.yaml is malformed or names something that does not exist."""

    title = "registry error"

    def __init__(self, message: str, hint: str | None = None, problems: list | None = None):
        super().__init__(message, hint)
        self.problems = problems or []


class PluginError(MmzooError):
    """A plugin could not be loaded or registered something invalid."""

    title = "plugin error"


class DataError(MmzooError):
    """A dataset is missing, malformed, or failed its check."""

    title = "data error"


class TrainingError(MmzooError):
    """Training could not start or had to stop (e.g. a NaN loss)."""

    title = "training error"


class RunError(MmzooError):
    """A run folder is missing, incomplete or incompatible."""

    title = "run error"


class ExportError(MmzooError):
    """An ONNX export failed, or failed its parity check."""

    title = "export error"
