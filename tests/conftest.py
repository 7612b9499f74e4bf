"""Test-session settings: the persistent compilation cache stays off, so tests neither read nor fill the user's."""

import os

os.environ["SCALERL_COMPILE_CACHE"] = "off"
