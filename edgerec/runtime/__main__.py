"""`python -m edgerec.runtime recommend|bench|verify`: the torch-free runtime's command line.

Everything is in `edgerec.runtime.cli`; this file only makes the package runnable.
"""

import sys

from edgerec.runtime.cli import main

if __name__ == "__main__":
    sys.exit(main())
