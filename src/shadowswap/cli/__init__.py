"""The ``shadowswap`` command: a thin shell that parses, calls the library and renders."""
