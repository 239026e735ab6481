"""hdhub: an open-source health data platform.

``hdhub.Hub`` opens a deployment directory and gives the same operations as the CLI.
"""

from hdhub.errors import HdhubError

__version__ = "0.1.0"

__all__ = ["HdhubError", "Hub", "__version__"]


def __getattr__(name: str) -> object:
    # Lazy so that ``import hdhub`` stays cheap (the CLI's --help must be fast).
    if name == "Hub":
        from hdhub.hub import Hub

        return Hub
    raise AttributeError(name)
