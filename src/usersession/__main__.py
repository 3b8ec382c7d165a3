"""`python -m usersession`: the same as the `usersession` command."""

from .cli import main

raise SystemExit(main())
