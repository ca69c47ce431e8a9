"""The ``shadowswap`` command: a thin shell that parses, calls the library and renders.

Owns the typer commands, their options and how results are printed. May import every
layer (it is the top); nothing imports it but ``__main__``.
"""
