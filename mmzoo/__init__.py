"""mmzoo: a plugin-based zoo of text+image classifiers and their ensembles.

The public verbs are few and re-exported here; importing mmzoo stays cheap
because each verb imports what it needs when called.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["create_model", "list_models", "list_parts", "__version__"]


def create_model(name_or_spec, num_classes: int | None = None, registry_file: str | None = None):
    """Build a torch model from a registry.yaml name or a resolved spec."""
    from mmzoo.train.factory import create_model as _create

    return _create(name_or_spec, num_classes=num_classes, registry_file=registry_file)


def list_models(pattern: str | None = None, registry_file: str | None = None) -> list[str]:
    """Names of the registry's models (and ensembles) matching a glob pattern."""
    from mmzoo.zoo.listing import list_models as _list

    return _list(pattern, registry_file)


def list_parts(kind: str, pattern: str | None = None) -> list[str]:
    """Names of registered parts of one kind: encoder, fusion, combiner or dataset."""
    from mmzoo.zoo.listing import list_parts as _list

    return _list(kind, pattern)
