"""Run exported policies fast: `load_policy(folder)` -> a callable `Policy`.

    from physai.training.runtime import load_policy
    policy = load_policy("exports/anymal", device="cpu")
    actions = policy(obs)
    print(policy.latency())

Backends: ONNX Runtime (CPU, or CUDA with onnxruntime-gpu) with I/O bound once to fixed
buffers; TorchScript (CPU, or a replayed CUDA graph on a GPU); TensorRT engines on a GPU with
the `tensorrt` extra. The folder's `policy.json` (`physai.training.policy_card`) says what the
policy takes and returns and which files it has.
"""

from physai.training.runtime.policy import Policy, load_policy
from physai.training.runtime.stats import LatencyStats

__all__ = ["LatencyStats", "Policy", "load_policy"]
