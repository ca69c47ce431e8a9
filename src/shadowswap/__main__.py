"""``python -m shadowswap`` runs the CLI."""

from shadowswap.cli.app import main

main()
