"""Record ROS 2 episodes from the simulated robot: two processes talking over DDS on localhost.

Starts the recorder (`physai data-pipeline record`) with a service trigger, runs the simulated
robot in ROS mode in a second process (it calls the trigger around each of its two episodes),
then stops the recorder with SIGINT and lists what each bag holds. Needs the `ros` extra
(`pip install 'physai-data-pipeline[ros]'`, installed by scripts/setup-dev).

    uv run python data-pipeline/examples/record.py [WORK_DIR]
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from physai.data_pipeline.bags import find_bags, inspect_bag

CONFIG = """
version: 1
topics:
  - {{name: /joint_states, type: sensor_msgs/msg/JointState, rate_hz: 500, compression: zstd}}
  - {{name: /camera/image_raw, type: sensor_msgs/msg/Image, rate_hz: 30}}
  - {{name: /arm/command, type: std_msgs/msg/Float64MultiArray, rate_hz: 30, compression: lz4}}
trigger: {{kind: service, service: /physai/record}}
disk: {{warning_free_gb: 1, critical_free_gb: 0.2}}
output_dir: {output}
max_episode_s: 60
metadata: {{task: touch the red target, robot_id: sim-reacher, operator: example}}
"""


def main(work: Path) -> None:
    physai = str(Path(sys.executable).with_name("physai"))
    env = {
        **os.environ,
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",  # keep DDS traffic on this machine
        "ROS_DOMAIN_ID": str(random.randint(1, 200)),
    }
    work.mkdir(parents=True, exist_ok=True)
    config = work / "recording.yaml"
    config.write_text(CONFIG.format(output=work / "bags"))
    recorder = subprocess.Popen(
        [physai, "data-pipeline", "record", "--config", str(config), "--json"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    published = subprocess.run(
        [physai, "data-pipeline", "sim-robot", "--mode", "ros", "--task", "reacher",
         "--episodes", "2", "--seconds", "2", "--width", "96", "--height", "72",
         "--trigger-service", "/physai/record", "--json"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    recorder.send_signal(signal.SIGINT)
    episodes = json.loads(recorder.communicate(timeout=30)[0])
    print("published:", published.stdout.strip())
    for episode in episodes:
        print(f"{Path(episode['path']).name}: {episode['messages']} ({episode['stop_reason']})")
    for bag in find_bags([work / "bags"]):
        for topic in inspect_bag(bag):
            print(f"  {bag.name} {topic.topic:20} {topic.count:5} msgs {topic.rate_hz:6.1f} Hz")
    assert [e["messages"] for e in episodes] == json.loads(published.stdout)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as folder:
            main(Path(folder))
