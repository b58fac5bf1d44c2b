"""`python -m benchmarks ...`: `headline` goes to report.py, the rest to the harness."""

import os
import sys

from benchmarks import harness, report

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
argv = sys.argv[1:]
if argv[:1] == ["headline"]:
    sys.exit(report.headline_main(argv[1:]))
sys.exit(harness.main(argv))
