"""``python -m imworkbench``: the ``workbench`` command."""

from imworkbench.cli import main

main()
