"""The contract test kit for backends (public SDK): ``CHECKS`` run against a ``KitTarget``."""

from adapters.contract.faults import TcpFaultProxy, TransportFaults
from adapters.contract.kit import CHECKS, Check, KitFailure, KitSkip, KitTarget

__all__ = ["CHECKS", "Check", "KitFailure", "KitSkip", "KitTarget", "TcpFaultProxy", "TransportFaults"]
