"""Entrypoint of the physai inference image: load the policy, report it, then run the command.

    docker run IMAGE                        # load $PHYSAI_POLICY, print one JSON line, exit 0
    docker run IMAGE python -m my.server    # load and check the policy first, then exec it

Environment: PHYSAI_POLICY (the policy folder, default /policy), PHYSAI_DEVICE (auto, cpu or
cuda; default auto), PHYSAI_FORMAT (onnx, torchscript or tensorrt; default: the fastest the
card has and this machine runs). A policy that cannot be loaded (missing, not matching its
card's sha256, no runnable format) prints one line on stderr and exits 2.
"""

from __future__ import annotations

import json
import os
import sys


def main(argv: list[str]) -> int:
    """Load the policy named by the environment; exec `argv` afterwards when given."""
    from physai.core.errors import UserError
    from physai.training.runtime import load_policy

    path = os.environ.get("PHYSAI_POLICY") or "/policy"
    device = os.environ.get("PHYSAI_DEVICE") or "auto"
    fmt = os.environ.get("PHYSAI_FORMAT") or None
    try:
        policy = load_policy(path, format=fmt, device=device)  # type: ignore[arg-type]
    except UserError as exc:
        print(f"physai inference: {exc}", file=sys.stderr, flush=True)
        return 2
    describe = getattr(policy, "describe", None)
    facts = describe() if callable(describe) else {}
    print(json.dumps({"policy": path, "loaded": repr(policy), **facts}), flush=True)
    if argv:
        os.execvp(argv[0], argv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
