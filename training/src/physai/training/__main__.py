"""`python -m physai.training rl|il ...`: the training commands for launchers that start a
module (`accelerate launch -m physai.training il ...`, `torchrun -m physai.training ...`)."""

import sys

from physai.core.cli import main

if __name__ == "__main__":
    sys.argv = ["physai", "training", *sys.argv[1:]]
    main()
