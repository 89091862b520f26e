"""The episodic ROS 2 recorder: one MCAP bag per episode, started and stopped by a trigger.

    config = load_recording_config("arm.yaml")
    report = Recorder(config).run()          # until SIGINT/SIGTERM; returns what it recorded

It subscribes to every configured topic *raw* (the serialized CDR bytes are written as they
arrive, never deserialized), with reliable QoS. Episodes start and stop on the configured
trigger: a std_srvs/SetBool service, a std_msgs/Bool topic, or a joint-position condition with
hysteresis; `max_episode_s` and the critical disk threshold also stop one (a joint trigger then
waits for its start condition to clear before it starts another). While an episode
records, a topic silent for longer than its gap threshold is reported (logged, and listed in
the episode's metadata). An episode is written in a hidden `.NAME.recording` folder and renamed
to `NAME` once its file, `metadata.yaml` and `episode.json` are complete and fsynced, so the
converter and the uploader never see a partial bag. On SIGINT or SIGTERM the recorder takes
every message already received, closes the episode, and exits.
"""

from __future__ import annotations

import logging
import shutil
import signal
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from physai.core.errors import UserError
from physai.data_pipeline.config import (
    JointTrigger,
    RecordingConfig,
    ServiceTrigger,
    TopicTrigger,
)
from physai.data_pipeline.mcap_episode import McapEpisode, check_type
from physai.data_pipeline.ros import message_class, reliable_qos, require_rclpy

log = logging.getLogger(__name__)
MAX_LOGGED_GAPS = 20
MAX_LISTED_GAPS = 1000


@dataclass
class Gap:
    """A topic that was silent for longer than its threshold while recording."""

    topic: str
    after_s: float
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"topic": self.topic, "after_s": round(self.after_s, 4), "seconds": self.seconds}


@dataclass
class EpisodeSummary:
    """One finished episode."""

    path: Path
    messages: dict[str, int]
    seconds: float
    stop_reason: str
    gaps: list[Gap] = field(default_factory=list)


@dataclass
class RecorderReport:
    """What a recorder run produced."""

    episodes: list[EpisodeSummary] = field(default_factory=list)


class Recorder:
    """The recorder node; `run()` spins it until a signal (or `request_stop()`)."""

    def __init__(
        self,
        config: RecordingConfig,
        *,
        node_name: str = "physai_recorder",
        discovery_timeout_s: float = 10.0,
    ) -> None:
        self.config = config
        self.output = Path(config.output_dir)
        self.node_name = node_name
        self.discovery_timeout_s = discovery_timeout_s
        self.report = RecorderReport()
        self._episode: McapEpisode | None = None
        self._final: Path | None = None
        self._started = 0.0
        self._started_ns = 0
        self._types: dict[str, str] = {}
        self._last: dict[str, int] = {}
        self._gaps: list[Gap] = []
        self._silent: set[str] = set()
        self._stop = False
        self._disk_state = "ok"
        self._count = 0
        self._needs_rearm = False

    # -- lifecycle -------------------------------------------------------------------------

    def request_stop(self, *_: object) -> None:
        """Ask `run()` to finish: the episode in progress is closed with what was received."""
        self._stop = True

    def run(self) -> RecorderReport:
        """Record until SIGINT/SIGTERM or `request_stop()`; returns the episodes written."""
        rclpy = require_rclpy()
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions

        self.output.mkdir(parents=True, exist_ok=True)
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        context = rclpy.Context()
        rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
        try:
            node = rclpy.create_node(self.node_name, context=context)
            types = self._topic_types(node)
            for name, msgtype in types.items():  # fail now, not at the first episode
                check_type(name, msgtype)
            for topic in self.config.topics:
                node.create_subscription(
                    message_class(types[topic.name]),
                    topic.name,
                    self._receiver(topic.name),
                    reliable_qos(),
                    raw=True,
                )
            self._types = types
            self._make_trigger(node)
            node.create_timer(0.05, self._watch_gaps)
            node.create_timer(self.config.disk.check_interval_s, self._watch_disk)
            self._watch_disk()
            executor = SingleThreadedExecutor(context=context)
            executor.add_node(node)
            log.info("recording %d topic(s) into %s", len(types), self.output)
            while not self._stop:
                executor.spin_once(timeout_sec=0.05)
            self._drain(executor)
            self._stop_episode("signal")
            node.destroy_node()
        finally:
            if self._episode is not None:  # an error above: keep what was received
                self._stop_episode("error")
            rclpy.shutdown(context=context)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self.report

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop = True

    def _drain(self, executor: Any, idle_s: float = 0.3, limit_s: float = 5.0) -> None:
        """Take every message already delivered: spin until nothing arrives for `idle_s`."""
        deadline = time.monotonic() + limit_s
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            before = self._count
            executor.spin_once(timeout_sec=0.02)
            if self._count != before:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > idle_s:
                return

    # -- topics ----------------------------------------------------------------------------

    def _topic_types(self, node: Any) -> dict[str, str]:
        """Configured types, and the others discovered on the graph (waits for them)."""
        types = {t.name: t.type for t in self.config.topics if t.type}
        wanted = {t.name for t in self.config.topics if not t.type}
        deadline = time.monotonic() + self.discovery_timeout_s
        while wanted - types.keys():
            for name, found in node.get_topic_names_and_types():
                if name in wanted and found:
                    types[name] = found[0]
            if not wanted - types.keys():
                break
            if time.monotonic() > deadline:
                missing = sorted(wanted - types.keys())
                raise UserError(
                    f"no publisher of {', '.join(missing)} seen in {self.discovery_timeout_s:g} s "
                    "to learn its type: give `type:` in the recording config"
                )
            time.sleep(0.1)
        return types

    def _receiver(self, topic: str) -> Any:
        def receive(data: bytes) -> None:
            now = time.time_ns()
            self._count += 1
            episode = self._episode
            if episode is None:
                return
            last = self._last.get(topic)
            threshold = self._threshold(topic)
            if last is not None and threshold is not None and (now - last) / 1e9 > threshold:
                self._gap(topic, last, now)
            self._last[topic] = now
            self._silent.discard(topic)
            episode.write(topic, now, data)

        return receive

    def _threshold(self, topic: str) -> float | None:
        return self.config.topic(topic).gap_threshold_s()

    def _gap(self, topic: str, last: int, now: int) -> None:
        gap = Gap(topic, (last - self._started_ns) / 1e9, round((now - last) / 1e9, 4))
        self._gaps.append(gap)
        if len(self._gaps) <= MAX_LOGGED_GAPS:
            log.warning("gap on %s: %.3f s without a message", topic, gap.seconds)
        elif len(self._gaps) == MAX_LOGGED_GAPS + 1:
            log.warning("more gaps in this episode: see gap_count in its episode.json")

    def _watch_gaps(self) -> None:
        """Warn once about a topic that has gone silent (the gap is recorded when it resumes)."""
        if self._episode is None:
            return
        now = time.time_ns()
        for topic in self.config.topics:
            threshold = topic.gap_threshold_s()
            since = self._last.get(topic.name, self._started_ns)
            silent = threshold is not None and (now - since) / 1e9 > threshold
            if silent and topic.name not in self._silent:
                self._silent.add(topic.name)
                log.warning("%s silent for %.3f s", topic.name, (now - since) / 1e9)
        limit = self.config.max_episode_s
        if limit is not None and time.monotonic() - self._started >= limit:
            self._stop_episode("max_episode_s")

    # -- disk ------------------------------------------------------------------------------

    def _watch_disk(self) -> None:
        free_gb = shutil.disk_usage(self.output).free / 1e9
        disk = self.config.disk
        if free_gb < disk.critical_free_gb:
            if self._disk_state != "critical":
                log.error(
                    "%.1f GB free in %s, below the critical %.1f GB: stopping and refusing "
                    "episodes",
                    free_gb, self.output, disk.critical_free_gb,
                )  # fmt: skip
            self._disk_state = "critical"
            self._stop_episode("disk_critical")
        elif free_gb < disk.warning_free_gb:
            if self._disk_state != "warning":
                log.warning("%.1f GB free in %s (warning below %.1f GB)", free_gb, self.output,
                            disk.warning_free_gb)  # fmt: skip
            self._disk_state = "warning"
        else:
            self._disk_state = "ok"

    # -- episodes --------------------------------------------------------------------------

    def start_episode(self) -> tuple[bool, str]:
        """Start an episode; (False, why) when one is running or the disk is critical."""
        if self._stop:
            return False, "the recorder is shutting down"
        if self._episode is not None:
            return False, "an episode is already recording"
        if self._disk_state == "critical":
            return False, "disk space is below the critical threshold"
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        name = f"episode_{stamp}_{len(self.report.episodes):04d}"
        while (self.output / name).exists():  # another recorder run in the same second
            name += "x"
        self._final = self.output / name
        metadata = self.config.metadata.model_dump(exclude_none=True)
        metadata["started_at"] = datetime.now(UTC).isoformat()
        compression = {t.name: t.compression for t in self.config.topics}
        self._episode = McapEpisode(
            self.output / f".{name}.recording", compression, metadata=metadata, name=name
        )
        for topic in self.config.topics:
            self._episode.add_topic(topic.name, self._types[topic.name])
        self._started = time.monotonic()
        self._started_ns = time.time_ns()
        self._last, self._gaps, self._silent = {}, [], set()
        log.info("episode %s started", name)
        return True, name

    def _stop_episode(self, reason: str) -> tuple[bool, str]:
        episode, final = self._episode, self._final
        if episode is None or final is None:
            return False, "no episode is recording"
        self._episode = None
        self._needs_rearm = reason != "trigger"
        seconds = time.monotonic() - self._started
        now = time.time_ns()
        for topic in self.config.topics:  # a topic silent up to the end is a gap too
            threshold = topic.gap_threshold_s()
            last = self._last.get(topic.name, self._started_ns)
            if threshold is not None and (now - last) / 1e9 > threshold:
                self._gap(topic.name, last, now)
        counts = episode.counts
        missing = [t.name for t in self.config.topics if t.required and not counts.get(t.name)]
        if missing:
            log.warning("episode %s: no message on required topic(s) %s", final.name, missing)
        episode.metadata.update(
            stopped_at=datetime.now(UTC).isoformat(),
            stop_reason=reason,
            duration_s=round(seconds, 3),
            message_counts=dict(episode.counts),
            gaps=[g.as_dict() for g in self._gaps[:MAX_LISTED_GAPS]],
            gap_count=len(self._gaps),
            missing_topics=missing,
        )
        episode.close()
        episode.folder.rename(final)
        self.report.episodes.append(
            EpisodeSummary(final, dict(episode.counts), seconds, reason, list(self._gaps))
        )
        log.info("episode %s: %d messages, %s", final.name, episode.messages, reason)
        return True, final.name

    def stop_episode(self) -> tuple[bool, str]:
        """Stop the episode in progress (its bag is complete when this returns)."""
        return self._stop_episode("trigger")

    # -- triggers --------------------------------------------------------------------------

    def _make_trigger(self, node: Any) -> None:
        trigger = self.config.trigger
        if isinstance(trigger, ServiceTrigger):
            from std_srvs.srv import SetBool

            def serve(request: Any, response: Any) -> Any:
                ok, message = self.start_episode() if request.data else self.stop_episode()
                response.success, response.message = ok, message
                return response

            node.create_service(SetBool, trigger.service, serve)
        elif isinstance(trigger, TopicTrigger):
            from std_msgs.msg import Bool

            def on_bool(message: Any) -> None:
                self._set_recording(bool(message.data))

            node.create_subscription(Bool, trigger.topic, on_bool, reliable_qos(10))
        else:
            self._make_joint_trigger(node, trigger)

    def _make_joint_trigger(self, node: Any, trigger: JointTrigger) -> None:
        from sensor_msgs.msg import JointState

        def on_joints(message: Any) -> None:
            try:
                position = float(message.position[list(message.name).index(trigger.joint)])
            except (ValueError, IndexError):
                return
            recording = self._episode is not None
            wanted = trigger.next_state(recording, position)
            if self._needs_rearm:  # stopped by a limit: wait for the start condition to clear
                self._needs_rearm = wanted and not recording
                return
            self._set_recording(wanted)

        node.create_subscription(JointState, trigger.topic, on_joints, reliable_qos())

    def _set_recording(self, wanted: bool) -> None:
        if wanted and self._episode is None:
            ok, why = self.start_episode()
            if not ok:
                log.warning("episode not started: %s", why)
        elif not wanted and self._episode is not None:
            self.stop_episode()
