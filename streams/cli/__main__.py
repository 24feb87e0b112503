"""``python -m streams.cli``: the same as the ``placewatch`` command."""

from streams.cli.main import main

main()
