"""Test-session settings.

* The persistent compilation cache stays off, so tests neither read nor fill the user's.
* XLA compiles with its lighter backend optimisation (level 1 instead of 3): the suite is dominated by compile time
  (tiny shapes, few steps), and this halves it (benchmarks/README.md, "Test suite"). Every equality a test checks
  compares programs compiled under the same flags, so none depends on the level; commands run outside the tests use
  XLA's defaults.
"""

import os

os.environ["SCALERL_COMPILE_CACHE"] = "off"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=1").strip()
