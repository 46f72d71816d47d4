"""``python -m searchkd`` = the ``searchkd`` command."""

from searchkd.cli import main

raise SystemExit(main())
