"""The hook contract: every plugin, mmzoo's own included, speaks only this.

Each hook receives a ``register`` callback owned by mmzoo, so mmzoo decides names
and collisions and plugins never touch its tables. Call it once per part::

    register(name, factory, *, description, params=(), modality=None, task=None, tokens=None, token_params=None)

``factory`` is a ``"package.module:attr"`` string (imported only when the part is
built, which keeps listing the zoo free of torch) or the callable itself.
``params`` is a sequence of :class:`mmzoo.zoo.parts.Param`. A dataset may declare
``task="tokens"`` (a tag per token, see mmzoo.tokens) instead of the default
``"classification"``. A fusion that can condition a token tagger on an image declares its
token form: ``tokens="package.module:attr"`` (a :class:`mmzoo.fusions.tokens.TokenFusion`) and,
when they differ from ``params``, ``token_params``; a fusion without ``tokens`` is refused for
token models when the registry is validated.
"""

import pluggy

hookspec = pluggy.HookspecMarker("mmzoo")
hookimpl = pluggy.HookimplMarker("mmzoo")


@hookspec
def register_encoders(register):
    """Register text and image encoders (``modality="text"`` or ``"image"``)."""


@hookspec
def register_fusions(register):
    """Register fusion strategies: how text and image features meet."""


@hookspec
def register_combiners(register):
    """Register ensemble combiners: how members' probabilities are combined."""


@hookspec
def register_datasets(register):
    """Register datasets: factories returning a :class:`mmzoo.data.Dataset` (or, with ``task="tokens"``, a
    :class:`mmzoo.data.tokens.TokenDataset`)."""
