"""`python -m services.console.demo [--out PATH] [--check]`: write or check deploy/demo/scenario.jsonl."""

import sys

from services.console.demo import main

sys.exit(main())
