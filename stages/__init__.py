"""DVC stages: thin I/O wrappers over the :mod:`dscl` library, one module per stage."""
