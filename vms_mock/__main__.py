"""``python -m vms_mock`` is ``vms-mock``."""

import sys

from vms_mock.cli import main

sys.exit(main())
