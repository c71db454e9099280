"""``python -m polygraft`` (used under ``torchrun --nproc-per-node N -m polygraft finetune ...``)."""

import sys

from polygraft.cli import main

sys.exit(main())
