"""The ``hdhub`` command: a thin Typer layer over the same service functions as the API."""
