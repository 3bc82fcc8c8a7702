"""Registers mmzoo's own parts, through the same hooks as any third-party plugin."""

from mmzoo.zoo.hookspecs import hookimpl


@hookimpl
def register_encoders(register):
    from mmzoo.encoders.meta import register_all

    register_all(register)


@hookimpl
def register_fusions(register):
    from mmzoo.fusions.meta import register_all

    register_all(register)


@hookimpl
def register_combiners(register):
    from mmzoo.combiners.meta import register_all

    register_all(register)


@hookimpl
def register_datasets(register):
    from mmzoo.data.meta import register_all

    register_all(register)
