import sys

from sparserl.cli import main

sys.exit(main())
