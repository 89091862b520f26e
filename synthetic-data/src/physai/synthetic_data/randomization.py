"""Domain randomization for the simulated arms: what varies from one episode to the next.

    config = RandomizationConfig.from_yaml("randomize.yaml")
    draw = config.sample(np.random.default_rng((seed, episode)))   # {"light_intensity": 0.8, ...}
    scene = SceneRandomizer(arm); scene.apply(draw)                # before the episode runs

Every factor is optional; a factor left out stays at the model's value. Each episode gets one
draw (a flat dict of numbers), which the demonstrations write as episode labels (`rand.<key>`)
so curation can filter on them. Sensor noise and action latency are applied by the episode
loop, the rest to the MuJoCo model here. Unknown keys and empty or reversed ranges are refused
when the config loads, before any episode runs.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from physai.core.jobs.spec import YamlModel


class Range(BaseModel):
    """A closed interval [low, high] sampled uniformly."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        return self

    def sample(self, rng: np.random.Generator) -> float:
        """One uniform draw."""
        return float(rng.uniform(self.low, self.high)) if self.high > self.low else self.low


def _positive(value: Range | None, what: str) -> None:
    if value is not None and value.low <= 0:
        raise ValueError(f"{what} must be a range of positive factors")


class RandomizationConfig(YamlModel):
    """The factors to randomize per episode (YAML keys as below; all optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    yaml_kind: ClassVar[str] = "randomization config"

    light_intensity: Range | None = Field(None, description="factor on every light's diffuse")
    light_ambient: Range | None = Field(None, description="headlight ambient level (0-1)")
    color_jitter: float | None = Field(
        None, ge=0, le=1, description="max RGB change of every visible geom (0-1 scale)"
    )
    camera_distance: Range | None = Field(None, description="factor on the camera distance")
    camera_azimuth_deg: Range | None = Field(None, description="offset of the camera azimuth")
    camera_elevation_deg: Range | None = Field(None, description="offset of the elevation")
    object_offset_m: Range | None = Field(
        None, description="extra offset of the object/target, per axis (metres)"
    )
    mass_scale: Range | None = Field(None, description="factor on every body's mass")
    friction_scale: Range | None = Field(None, description="factor on every geom's friction")
    state_noise_std: float = Field(0.0, ge=0, description="gaussian noise on the joint state")
    image_noise_std: float = Field(0.0, ge=0, le=128, description="gaussian pixel noise (0-255)")
    action_latency_steps: tuple[int, int] | None = Field(
        None, description="[min, max] control steps between deciding and applying an action"
    )

    @model_validator(mode="after")
    def _check(self) -> RandomizationConfig:
        _positive(self.light_intensity, "light_intensity")
        _positive(self.camera_distance, "camera_distance")
        _positive(self.mass_scale, "mass_scale")
        _positive(self.friction_scale, "friction_scale")
        if self.light_ambient is not None and not 0 <= self.light_ambient.low <= 1:
            raise ValueError("light_ambient must lie in 0-1")
        if self.light_ambient is not None and self.light_ambient.high > 1:
            raise ValueError("light_ambient must lie in 0-1")
        latency = self.action_latency_steps
        if latency is not None and not 0 <= latency[0] <= latency[1] <= 30:
            raise ValueError("action_latency_steps must be [min, max] with 0 <= min <= max <= 30")
        return self

    def sample(self, rng: np.random.Generator) -> dict[str, float]:
        """One episode's draw: a flat {factor: value} (only the factors configured)."""
        draw: dict[str, float] = {}
        for name in (
            "light_intensity",
            "light_ambient",
            "camera_distance",
            "camera_azimuth_deg",
            "camera_elevation_deg",
            "mass_scale",
            "friction_scale",
        ):
            value: Range | None = getattr(self, name)
            if value is not None:
                draw[name] = value.sample(rng)
        if self.color_jitter:
            draw["color_shift"] = float(rng.uniform(-self.color_jitter, self.color_jitter))
            draw["color_seed"] = float(rng.integers(0, 2**31))
        if self.object_offset_m is not None:
            draw["object_dx"] = self.object_offset_m.sample(rng)
            draw["object_dy"] = self.object_offset_m.sample(rng)
        if self.state_noise_std:
            draw["state_noise_std"] = self.state_noise_std
        if self.image_noise_std:
            draw["image_noise_std"] = self.image_noise_std
        if self.action_latency_steps is not None:
            low, high = self.action_latency_steps
            draw["action_latency_steps"] = float(rng.integers(low, high + 1))
        return draw


class SceneRandomizer:
    """Applies draws to one arm's MuJoCo model, restoring the nominal model first each time."""

    def __init__(self, arm: Any) -> None:
        self.arm = arm
        model = arm.model
        self._nominal = {
            "light_diffuse": model.light_diffuse.copy(),
            "headlight_diffuse": np.array(model.vis.headlight.diffuse),
            "headlight_ambient": np.array(model.vis.headlight.ambient),
            "geom_rgba": model.geom_rgba.copy(),
            "body_mass": model.body_mass.copy(),
            "body_inertia": model.body_inertia.copy(),
            "geom_friction": model.geom_friction.copy(),
        }
        self._camera = dict(arm.camera)

    def apply(self, draw: dict[str, float]) -> None:
        """Set the model and camera for one episode (after `arm.reset`, before it runs)."""
        arm, model, nominal = self.arm, self.arm.model, self._nominal
        intensity = draw.get("light_intensity", 1.0)
        model.light_diffuse[:] = np.clip(nominal["light_diffuse"] * intensity, 0, 1)
        model.vis.headlight.diffuse[:] = np.clip(nominal["headlight_diffuse"] * intensity, 0, 1)
        ambient = draw.get("light_ambient")
        model.vis.headlight.ambient[:] = (
            nominal["headlight_ambient"] if ambient is None else np.full(3, ambient)
        )
        rgba = nominal["geom_rgba"].copy()
        if "color_shift" in draw:
            rng = np.random.default_rng(int(draw["color_seed"]))
            shift = rng.uniform(-1, 1, (len(rgba), 3)) * abs(draw["color_shift"])
            rgba[:, :3] = np.clip(rgba[:, :3] + shift, 0, 1)
        model.geom_rgba[:] = rgba
        mass = draw.get("mass_scale", 1.0)
        model.body_mass[:] = nominal["body_mass"] * mass
        model.body_inertia[:] = nominal["body_inertia"] * mass
        arm.mj.mj_setConst(model, arm.data)  # derived constants (subtree masses, inv. weights)
        model.geom_friction[:] = nominal["geom_friction"] * draw.get("friction_scale", 1.0)
        camera = dict(self._camera)
        camera["distance"] = camera.get("distance", 1.0) * draw.get("camera_distance", 1.0)
        camera["azimuth"] = camera.get("azimuth", 90.0) + draw.get("camera_azimuth_deg", 0.0)
        camera["elevation"] = camera.get("elevation", -45.0) + draw.get("camera_elevation_deg", 0.0)
        arm.camera = camera
        if "object_dx" in draw:  # the puck (pusher) or the target (reacher)
            arm.data.qpos[arm.object_qpos] += (draw["object_dx"], draw["object_dy"])
            arm.scene_changed()
