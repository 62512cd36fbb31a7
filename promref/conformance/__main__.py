"""``python -m promref.conformance``: the conformance command line."""
import sys

from .cli import main

sys.exit(main())
