"""Ether across hosts: the bridge process, its zenoh config, certificates and the
router (the ``remote`` extra: ``pip install "ether[remote]"``).

Importing this package loads neither zenoh nor cryptography; only the process that
runs a bridge or a router imports zenoh (it must never live in a process that
forks: research/remote.md §2f).
"""
from ._certs import Written as Written
from ._certs import make_ca as make_ca
from ._certs import make_host as make_host
from ._router import DEFAULT_PORT as DEFAULT_PORT
from ._router import Router as Router
from ._zconfig import zenoh_config as zenoh_config

__all__ = ["DEFAULT_PORT", "Router", "Written", "make_ca", "make_host", "zenoh_config"]
