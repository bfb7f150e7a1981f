"""Analytical energy and latency of DNN inference on a DianNao-like tile accelerator with SRAM buffers and DRAM.

Import-light: numpy only (pandas for `sram_sweep`); never torch or plotly.
"""

from costmodel._accelerator import Accelerator, Dataflow, TilingRule, parse_bytes
from costmodel._cost import LayerCost, NetworkCost
from costmodel._effort import SampleCosts, per_sample_cost
from costmodel._exits import ExitCost, WaitingTensor, continuation_cost, exit_costs, shared_prefix, waiting_cost
from costmodel._errors import CostModelError, UserError
from costmodel._layers import LayerShape
from costmodel._network import best_partition, cascade_cost, increment_cost, network_cost, sram_sweep
from costmodel._technology import Technology, load_technology

__all__ = [
    "Accelerator",
    "CostModelError",
    "Dataflow",
    "ExitCost",
    "LayerCost",
    "LayerShape",
    "NetworkCost",
    "SampleCosts",
    "Technology",
    "TilingRule",
    "UserError",
    "WaitingTensor",
    "best_partition",
    "cascade_cost",
    "continuation_cost",
    "exit_costs",
    "increment_cost",
    "load_technology",
    "network_cost",
    "parse_bytes",
    "per_sample_cost",
    "shared_prefix",
    "sram_sweep",
    "waiting_cost",
]
