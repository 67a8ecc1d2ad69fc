"""The old home of the configuration checks, now ``illbridge.intake.checks``. Kept only because an end-to-end
test (which must not change) imports it and clears its cache: this name is the very same module object."""

import sys

from illbridge.intake import checks as _checks

sys.modules[__name__] = _checks
