"""Provides the contract checks a plugin's own tests call: build a part, exercise it, raise PluginError on any breach.

    from mmzoo.testing import check_combiner, check_dataset, check_encoder, check_fusion, check_plugin

    check_token_fusion("my_fusion", dim=8)  # a fusion registered with tokens=...: its token form

    def test_my_encoder():
        check_encoder("my_encoder", dim=16)  # by registered name, with small params

    def test_everything_my_plugin_registers():
        check_plugin("my_plugin", params={"my_encoder": {"dim": 16}})

Each check builds the part through the installed plugins (or takes an instance),
runs it the way mmzoo's trainer, ensembles and ONNX export will, and returns it.
"""

from mmzoo.testing.checks import check_combiner, check_dataset, check_encoder, check_fusion, check_params
from mmzoo.testing.plugin import check_lazy, check_plugin
from mmzoo.testing.tokens import check_token_fusion

__all__ = ["check_combiner", "check_dataset", "check_encoder", "check_fusion", "check_lazy", "check_params",
           "check_plugin", "check_token_fusion"]
