import sys

from loopline.cli import main

sys.exit(main())
