"""A simulated robot for development and demos: a MuJoCo arm, an offscreen camera, an expert.

    arm = SimArm("pusher", seed=3, width=320, height=240)
    for event in Episode(arm, seconds=4.0):           # 500 Hz joints, 30 Hz camera + action
        ...
    write_episodes("bags/", "pusher", episodes=5)         # one MCAP bag per episode, no ROS

The arms are gymnasium's MuJoCo models (Pusher-v5's 7-joint arm, Reacher-v5's 2-joint arm),
loaded from the XML files gymnasium ships and stepped directly with `mujoco` so that physics
runs at the joint-state rate (500 Hz by default) instead of gymnasium's 20 Hz frame skip. The
camera renders offscreen through EGL (`MUJOCO_GL=egl` unless already set). The scripted expert
moves the arm tip through task-space waypoints (damped least-squares inverse kinematics, then
a joint PD loop); replayed actions bypass it. Actions are the motor commands (`data.ctrl`),
held between control ticks.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from physai.core.errors import MissingDependencyError, UserError

if TYPE_CHECKING:
    import mujoco

EventKind = Literal["joint_state", "image", "action"]
EGL_HINT = (
    "install EGL and Mesa (Debian: apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri), and "
    "set MUJOCO_GL=egl before anything imports mujoco"
)


@dataclass(frozen=True)
class SimTask:
    """One simulated arm task: its model, the arm's joints, and the expert's parameters."""

    name: str
    asset: str
    instruction: str
    joints: tuple[str, ...]
    tip_body: str
    tip_offset: tuple[float, float, float]
    home: tuple[float, ...]
    kp: float
    kd: float
    reach_tolerance: float
    camera: dict[str, Any] = field(default_factory=dict)


TASKS: dict[str, SimTask] = {
    "pusher": SimTask(
        name="pusher",
        asset="pusher_v5.xml",
        instruction="move the arm over the white puck, then over the red target",
        joints=(
            "r_shoulder_pan_joint",
            "r_shoulder_lift_joint",
            "r_upper_arm_roll_joint",
            "r_elbow_flex_joint",
            "r_forearm_roll_joint",
            "r_wrist_flex_joint",
            "r_wrist_roll_joint",
        ),
        tip_body="tips_arm",
        tip_offset=(0.05, 0.0, 0.0),
        home=(0.0, 0.4, 0.0, -1.2, 0.0, -0.6, 0.0),
        kp=8.0,
        kd=1.5,
        reach_tolerance=0.05,
        camera={"lookat": (0.25, -0.3, -0.25), "distance": 1.9, "azimuth": 150, "elevation": -35},
    ),
    "reacher": SimTask(
        name="reacher",
        asset="reacher.xml",
        instruction="touch the red target with the fingertip",
        joints=("joint0", "joint1"),
        tip_body="fingertip",
        tip_offset=(0.0, 0.0, 0.0),
        home=(0.0, 0.0),
        kp=0.3,
        kd=0.02,
        reach_tolerance=0.02,
        camera={"lookat": (0.0, 0.0, 0.0), "distance": 0.75, "azimuth": 90, "elevation": -90},
    ),
}


def _mujoco() -> Any:
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        import mujoco
    except ImportError as exc:
        raise MissingDependencyError(
            f"mujoco ({exc})", "pip install physai-data-pipeline (it depends on mujoco)"
        ) from None
    return mujoco


def task_names() -> list[str]:
    """The simulated tasks there are."""
    return sorted(TASKS)


def get_task(name: str) -> SimTask:
    """The task called `name`; UserError naming the known ones otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise UserError(f"unknown sim task {name!r} (known: {', '.join(task_names())})") from None


class SimArm:
    """One arm task in MuJoCo, stepped at `physics_hz`, with an offscreen camera."""

    def __init__(
        self,
        task: str,
        *,
        seed: int = 0,
        width: int = 320,
        height: int = 240,
        physics_hz: int = 500,
        antialias: bool = False,
    ) -> None:
        import gymnasium

        self.mj = _mujoco()
        self.task = get_task(task)
        if not (16 <= width <= 4096 and 16 <= height <= 4096):
            raise UserError(f"image size {width}x{height} is outside 16..4096")
        if not 50 <= physics_hz <= 10_000:
            raise UserError(f"physics rate {physics_hz} Hz is outside 50..10000")
        asset = Path(gymnasium.__file__).parent / "envs" / "mujoco" / "assets" / self.task.asset
        self.model: mujoco.MjModel = self.mj.MjModel.from_xml_path(str(asset))
        self.model.opt.timestep = 1.0 / physics_hz
        self.model.vis.global_.offwidth = max(width, self.model.vis.global_.offwidth)
        self.model.vis.global_.offheight = max(height, self.model.vis.global_.offheight)
        # 4x multisampling costs 2-3x the frame time on Mesa's software renderer
        self.model.vis.quality.offsamples = 4 if antialias else 0
        self.data: mujoco.MjData = self.mj.MjData(self.model)
        self.physics_hz = physics_hz
        self.width, self.height = width, height
        ids = [self.model.joint(name).id for name in self.task.joints]
        self._qpos = np.array([self.model.jnt_qposadr[i] for i in ids])
        self._qvel = np.array([self.model.jnt_dofadr[i] for i in ids])
        self._tip = self.model.body(self.task.tip_body).id
        self._renderer: Any = None
        self._camera: Any = None
        self.camera: dict[str, Any] = dict(self.task.camera)
        """The free camera (lookat, distance, azimuth, elevation); change it between frames."""
        self.reset(seed)

    @property
    def joint_names(self) -> list[str]:
        """The arm's joint names, in the order of every vector this class returns."""
        return list(self.task.joints)

    def reset(self, seed: int) -> None:
        """Home posture with small noise, and a random object/target placement."""
        rng = np.random.default_rng(seed)
        self.mj.mj_resetData(self.model, self.data)  # cheaper than a new MjData (~35 ms)
        home = np.asarray(self.task.home) + rng.uniform(-0.05, 0.05, len(self.task.home))
        self.data.qpos[self._qpos] = home
        if self.task.name == "pusher":
            while True:  # the puck somewhere in front of the target, not on it
                puck = np.array([rng.uniform(-0.3, 0.0), rng.uniform(-0.2, 0.2)])
                if np.linalg.norm(puck) > 0.17:
                    break
            self.data.qpos[-4:-2] = puck
            self.data.qpos[-2:] = 0.0
        else:
            while True:
                target = rng.uniform(-0.2, 0.2, 2)
                if 0.05 < np.linalg.norm(target) < 0.2:
                    break
            self.data.qpos[-2:] = target
        self.mj.mj_forward(self.model, self.data)
        self.waypoints = self._waypoints()

    @property
    def object_qpos(self) -> slice:
        """Where the movable object's (x, y) slide joints sit in `data.qpos`: the puck for
        pusher, the target for reacher."""
        return slice(-4, -2) if self.task.name == "pusher" else slice(-2, None)

    def scene_changed(self) -> None:
        """Recompute kinematics and the expert's waypoints after `data.qpos` was edited."""
        self.mj.mj_forward(self.model, self.data)
        self.waypoints = self._waypoints()

    def _waypoints(self) -> list[NDArray[np.float64]]:
        if self.task.name == "pusher":
            puck = self.data.xpos[self.model.body("object").id].copy()
            goal = self.data.xpos[self.model.body("goal").id].copy()
            return [np.r_[puck[:2], -0.2], np.r_[goal[:2], -0.2]]
        return [self.data.xpos[self.model.body("target").id].copy()]

    @property
    def time_s(self) -> float:
        """Simulated time since the reset."""
        return float(self.data.time)

    def positions(self) -> NDArray[np.float64]:
        """Joint positions (rad)."""
        return np.asarray(self.data.qpos[self._qpos], np.float64).copy()

    def velocities(self) -> NDArray[np.float64]:
        """Joint velocities (rad/s)."""
        return np.asarray(self.data.qvel[self._qvel], np.float64).copy()

    def efforts(self) -> NDArray[np.float64]:
        """Actuator forces on the joints."""
        return np.asarray(self.data.actuator_force, np.float64).copy()

    def tip(self, data: Any = None) -> NDArray[np.float64]:
        """The arm tip's position in the world."""
        data = self.data if data is None else data
        offset = np.asarray(self.task.tip_offset)
        return np.asarray(data.xpos[self._tip] + data.xmat[self._tip].reshape(3, 3) @ offset)

    def act(self, ctrl: NDArray[np.float64]) -> None:
        """Set the motor commands (clipped to their range); they hold until the next call."""
        low, high = self.model.actuator_ctrlrange.T
        self.data.ctrl[:] = np.clip(ctrl, low, high)

    def step(self) -> None:
        """Advance the physics one step (1 / physics_hz)."""
        self.mj.mj_step(self.model, self.data)

    def render(self) -> NDArray[np.uint8]:
        """The camera image, height x width x 3 RGB."""
        if self._renderer is None:
            try:
                self._renderer = self.mj.Renderer(self.model, self.height, self.width)
            except Exception as exc:  # no EGL/GL: say what to install
                raise MissingDependencyError(f"offscreen rendering ({exc})", EGL_HINT) from None
            flags = self._renderer.scene.flags  # shadows cost 5x the frame time on Mesa
            flags[self.mj.mjtRndFlag.mjRND_SHADOW] = False
            flags[self.mj.mjtRndFlag.mjRND_REFLECTION] = False
            self._camera = self.mj.MjvCamera()
        for key, value in self.camera.items():
            setattr(self._camera, key, value)
        self._renderer.update_scene(self.data, camera=self._camera)
        return np.asarray(self._renderer.render())

    def close(self) -> None:
        """Release the renderer's GL context."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


class ScriptedExpert:
    """Moves the arm tip through the task's waypoints: IK for a joint target, then PD."""

    def __init__(self, arm: SimArm) -> None:
        self.arm = arm
        self.reached = 0
        self._scratch = arm.mj.MjData(arm.model)
        self._reference = arm.positions()
        self._solution = self._reference.copy()  # the last IK answer: the next one starts there
        model = arm.model
        ids = [model.joint(n).id for n in arm.task.joints]
        low, high = model.jnt_range[ids].T
        limited = model.jnt_limited[ids].astype(bool)
        self._low, self._high = np.where(limited, low, -np.inf), np.where(limited, high, np.inf)
        self._jacobian = np.zeros((3, model.nv))

    @property
    def success(self) -> bool:
        """Whether every waypoint was reached."""
        return self.reached == len(self.arm.waypoints)

    def action(self) -> NDArray[np.float64]:
        """The motor commands for now."""
        arm = self.arm
        if not self.success and (
            np.linalg.norm(arm.tip() - arm.waypoints[self.reached]) < arm.task.reach_tolerance
        ):
            self.reached += 1
        target = arm.waypoints[min(self.reached, len(arm.waypoints) - 1)]
        wanted = self._inverse_kinematics(target)
        self._reference += np.clip(wanted - self._reference, -0.05, 0.05)  # a smooth reference
        task = arm.task
        return task.kp * (self._reference - arm.positions()) - task.kd * arm.velocities()

    def _inverse_kinematics(self, target: NDArray[np.float64], iterations: int = 30) -> Any:
        arm, scratch, jacobian = self.arm, self._scratch, self._jacobian
        mj, model = arm.mj, arm.model
        scratch.qpos[:] = arm.data.qpos
        scratch.qpos[arm._qpos] = self._solution
        for _ in range(iterations):
            mj.mj_kinematics(model, scratch)
            mj.mj_comPos(model, scratch)
            tip = arm.tip(scratch)
            error = target - tip
            if np.linalg.norm(error) < 1e-3:
                break
            mj.mj_jac(model, scratch, jacobian, None, tip, arm._tip)
            j = jacobian[:, arm._qvel]
            step = j.T @ np.linalg.solve(j @ j.T + 1e-2 * np.eye(3), error)
            scratch.qpos[arm._qpos] = np.clip(scratch.qpos[arm._qpos] + step, self._low, self._high)
        self._solution = scratch.qpos[arm._qpos].copy()
        return self._solution.copy()


@dataclass(frozen=True)
class SimEvent:
    """One thing the robot emits: joint state (positions, velocities, efforts), an image,
    or the action (motor commands) that starts at this time."""

    t_ns: int
    kind: EventKind
    data: Any


class Episode:
    """One episode of `arm`, as an iterator of `SimEvent`s: a joint state every physics step,
    an action every control tick (from the scripted expert, or row k of `actions`), an image
    every camera tick. After the iteration, `success` says whether the expert reached every
    waypoint (None for replayed actions)."""

    def __init__(
        self,
        arm: SimArm,
        seconds: float,
        *,
        start_ns: int = 0,
        camera_hz: float = 30.0,
        control_hz: float = 30.0,
        actions: NDArray[np.float64] | None = None,
    ) -> None:
        if seconds <= 0:
            raise UserError(f"episode length must be positive, not {seconds} s")
        if actions is not None and (actions.ndim != 2 or actions.shape[1] != arm.model.nu):
            raise UserError(f"replayed actions must be N x {arm.model.nu} for {arm.task.name}")
        self.arm, self.seconds, self.start_ns = arm, seconds, start_ns
        self.camera_hz, self.control_hz, self.actions = camera_hz, control_hz, actions
        self.expert = ScriptedExpert(arm) if actions is None else None
        self.success: bool | None = None

    def __iter__(self) -> Iterator[SimEvent]:
        arm = self.arm
        dt_ns = 10**9 // arm.physics_hz
        next_control = next_camera = 0.0
        tick = 0
        for i in range(round(self.seconds * arm.physics_hz)):
            t = i / arm.physics_hz
            t_ns = self.start_ns + i * dt_ns
            # The state at t first, then the action decided from it, then the image at t.
            yield SimEvent(t_ns, "joint_state", (arm.positions(), arm.velocities(), arm.efforts()))
            if t + 1e-9 >= next_control:
                if self.expert is not None:
                    arm.act(self.expert.action())
                else:
                    assert self.actions is not None
                    arm.act(self.actions[min(tick, len(self.actions) - 1)])
                yield SimEvent(t_ns, "action", np.asarray(arm.data.ctrl, np.float64).copy())
                tick += 1
                next_control += 1.0 / self.control_hz
            if t + 1e-9 >= next_camera:
                yield SimEvent(t_ns, "image", arm.render())
                next_camera += 1.0 / self.camera_hz
            arm.step()
        self.success = self.expert.success if self.expert is not None else None


TOPICS = {
    "joint_state": "/joint_states",
    "image": "/camera/image_raw",
    "action": "/arm/command",
}


def conversion_mapping(task: str, fps: int = 30) -> dict[str, Any]:
    """The mapping (`physai data-pipeline convert --mapping`) for bags of this task."""
    sim = get_task(task)
    return {
        "fps": fps,
        "task": sim.instruction,
        "robot_type": f"sim_{sim.name}",
        "features": {
            "observation.state": [
                {"topic": TOPICS["joint_state"], "field": "position", "names": list(sim.joints)}
            ],
            "action": [{"topic": TOPICS["action"], "field": "data"}],
            "observation.images.front": {"topic": TOPICS["image"]},
        },
        # Live ROS runs see delivery hiccups of a few frames on busy hosts: drop, do not fail.
        "align": {"numbers": "last", "max_staleness_ms": 200, "on_stale": "drop"},
    }


def write_episodes(
    out: str | os.PathLike[str],
    task: str,
    *,
    episodes: int = 1,
    seconds: float = 4.0,
    seed: int = 0,
    width: int = 320,
    height: int = 240,
    physics_hz: int = 500,
    camera_hz: float = 30.0,
    replay: Sequence[NDArray[np.float64]] | None = None,
    robot_id: str | None = None,
    start_ns: int = 1_764_590_400 * 10**9,
    compress: bool = False,
    progress: Any = None,
) -> list[Path]:
    """Write `episodes` MCAP bags (`out/episode_000000`, ...) and `out/mapping.yaml`.

    Episode k uses seed `seed + k`; with `replay`, episode k replays `replay[k]`. Each bag's
    episode.json holds the task text, robot id, seed and whether the expert succeeded.
    """
    import yaml

    from physai.data_pipeline.bag_writer import EpisodeBagWriter

    folder = Path(out)
    if episodes < 1:
        raise UserError(f"episodes must be 1 or more, not {episodes}")
    if replay is not None and len(replay) < episodes:
        raise UserError(f"{episodes} episodes asked, {len(replay)} replayed action sequences")
    arm = SimArm(task, seed=seed, width=width, height=height, physics_hz=physics_hz)
    names = arm.joint_names
    paths: list[Path] = []
    try:
        for k in range(episodes):
            arm.reset(seed + k)
            path = folder / f"episode_{k:06d}"
            metadata: dict[str, Any] = {
                "task": arm.task.instruction,
                "robot_id": robot_id or f"sim-{arm.task.name}",
                "tags": ["sim", arm.task.name, "replay" if replay is not None else "expert"],
                "seed": seed + k,
            }
            t0 = start_ns + k * round((seconds + 1.0) * 1e9)
            with EpisodeBagWriter(path, metadata=metadata, compress=compress) as bag:
                episode = Episode(
                    arm,
                    seconds,
                    start_ns=t0,
                    camera_hz=camera_hz,
                    control_hz=camera_hz,  # one action per frame, as the dataset replays them
                    actions=None if replay is None else np.asarray(replay[k], np.float64),
                )
                for event in episode:
                    if event.kind == "joint_state":
                        position, velocity, effort = event.data
                        bag.joint_state(event.t_ns, names, position, velocity, effort)
                    elif event.kind == "image":
                        bag.image(event.t_ns, TOPICS["image"], event.data)
                    else:
                        bag.array(event.t_ns, TOPICS["action"], event.data)
                bag.metadata["success"] = episode.success
            paths.append(path)
            if progress is not None:
                progress(path)
    finally:
        arm.close()
    mapping = yaml.safe_dump(conversion_mapping(task, round(camera_hz)), sort_keys=False)
    (folder / "mapping.yaml").write_text(mapping, encoding="utf-8")
    return paths


def publish_episodes(
    task: str,
    *,
    episodes: int = 1,
    seconds: float = 4.0,
    seed: int = 0,
    width: int = 320,
    height: int = 240,
    physics_hz: int = 500,
    camera_hz: float = 30.0,
    trigger_service: str | None = None,
    wait_for_subscribers_s: float = 10.0,
    realtime: bool = True,
) -> list[dict[str, int]]:
    """Publish episodes over ROS 2 (JointState, Image, Float64MultiArray) at real-time pace.

    With `trigger_service` (a std_srvs/SetBool service, e.g. the recorder's `/physai/record`),
    each episode is bracketed by `data: true` / `data: false` calls. Publishers wait up to
    `wait_for_subscribers_s` for a subscriber per topic. Returns the messages published per
    topic for each episode.
    """
    from physai.data_pipeline import ros

    rclpy = ros.require_rclpy()
    from sensor_msgs.msg import Image, JointState
    from std_msgs.msg import Float64MultiArray

    context = rclpy.Context()
    rclpy.init(context=context)
    arm = SimArm(task, seed=seed, width=width, height=height, physics_hz=physics_hz)
    counts: list[dict[str, int]] = []
    try:
        node = rclpy.create_node("physai_sim_robot", context=context)
        qos = ros.reliable_qos()
        publishers = {
            "joint_state": node.create_publisher(JointState, TOPICS["joint_state"], qos),
            "image": node.create_publisher(Image, TOPICS["image"], qos),
            "action": node.create_publisher(Float64MultiArray, TOPICS["action"], qos),
        }
        deadline = time.monotonic() + wait_for_subscribers_s
        while any(p.get_subscription_count() == 0 for p in publishers.values()):
            if time.monotonic() > deadline:
                break  # publish anyway: nobody may be listening, which is allowed
            time.sleep(0.05)
        trigger = _Trigger(node, context, trigger_service) if trigger_service else None
        for k in range(episodes):
            arm.reset(seed + k)
            if trigger is not None:
                trigger.call(True)
            sent = dict.fromkeys(TOPICS, 0)
            start_wall = time.monotonic()
            start_ns = time.time_ns()
            episode = Episode(
                arm, seconds, start_ns=start_ns, camera_hz=camera_hz, control_hz=camera_hz
            )
            for event in episode:
                if realtime:
                    delay = start_wall + (event.t_ns - start_ns) / 1e9 - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                if event.kind == "joint_state":
                    position, velocity, effort = event.data
                    message = ros.joint_state(
                        event.t_ns, arm.joint_names, position, velocity, effort
                    )
                elif event.kind == "image":
                    message = ros.image(event.t_ns, event.data)
                else:
                    message = ros.float_array(event.data)
                publishers[event.kind].publish(message)
                sent[event.kind] += 1
            if trigger is not None:
                time.sleep(0.2)  # let the last messages arrive before the episode stops
                trigger.call(False)
            counts.append({TOPICS[kind]: n for kind, n in sent.items()})
        node.destroy_node()
    finally:
        arm.close()
        rclpy.shutdown(context=context)
    return counts


class _Trigger:
    """A std_srvs/SetBool client that waits for the service and for each answer."""

    def __init__(self, node: Any, context: Any, service: str, timeout_s: float = 10.0) -> None:
        from rclpy.executors import SingleThreadedExecutor
        from std_srvs.srv import SetBool

        self._client = node.create_client(SetBool, service)
        self._executor = SingleThreadedExecutor(context=context)
        self._executor.add_node(node)
        self._type, self._service, self._timeout = SetBool, service, timeout_s
        if not self._client.wait_for_service(timeout_sec=timeout_s):
            raise UserError(f"no {service} service answered in {timeout_s:g} s")

    def call(self, data: bool) -> None:
        future = self._client.call_async(self._type.Request(data=data))
        self._executor.spin_until_future_complete(future, timeout_sec=self._timeout)
        response = future.result()
        if response is None or not response.success:
            why = "no answer" if response is None else response.message
            raise UserError(f"{self._service} refused data={data}: {why}")
