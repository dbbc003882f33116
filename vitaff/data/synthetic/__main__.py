"""``python -m vitaff.data.synthetic``: generate the embedded dataset."""

import sys

from vitaff.data.synthetic.cli import main

sys.exit(main())
