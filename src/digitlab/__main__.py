"""``python -m digitlab`` runs the command line."""

from digitlab.cli import main

main()
