"""``python -m illbridge_cli``: the same as the installed ``illbridge`` command."""

from illbridge_cli.app import main

main()
