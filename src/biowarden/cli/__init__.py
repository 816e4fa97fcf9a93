"""The ``biowarden`` command line (Typer + Rich). Commands act as the home's local operator."""
