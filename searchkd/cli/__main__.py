"""``python -m searchkd.cli``: the ``searchkd`` command."""

from searchkd.cli.main import main

raise SystemExit(main())
