"""A/B experiments: two (or more) arms of engine overrides, users assigned by a hash of their id."""

from __future__ import annotations

import hashlib
import json
import logging
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rag_core.errors import ConfigError
from rag_core.overrides import OVERRIDABLE, AnswerOverrides, check_overrides
from rag_core.settings import Settings

log = logging.getLogger(__name__)
_reported: set[str] = set()


class Experiment(BaseModel):
    """`RAG_AB_EXPERIMENT`: {"name": "rerank-off", "arms": {"a": {}, "b": {"use_reranker": false}}}."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    arms: dict[str, dict[str, Any]]

    @field_validator("arms")
    @classmethod
    def _arms_are_valid(cls, arms: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        if len(arms) < 2:
            raise ValueError(f"an experiment needs at least two arms, got {len(arms)}")
        for arm, overrides in arms.items():
            for key in overrides:
                if key not in OVERRIDABLE:
                    raise ValueError(
                        f"arm {arm!r}: unknown setting {key!r}; allowed: {', '.join(AnswerOverrides.model_fields)}"
                    )
            check_overrides(overrides, f"arm {arm!r}")
        return arms

    @property
    def arm_names(self) -> list[str]:
        """Arm names in a fixed (sorted) order, so assignment does not depend on the JSON's key order."""
        return sorted(self.arms)


def load_experiment(settings: Settings) -> Experiment | None:
    """The configured experiment, or None; a malformed one is a `ConfigError` naming what is wrong.

    Call it when a process starts so a bad `RAG_AB_EXPERIMENT` stops it with that line.
    """
    if not settings.ab_experiment:
        return None
    return _parse(json.dumps(settings.ab_experiment, sort_keys=True))


@lru_cache(maxsize=8)
def _parse(config_json: str) -> Experiment:
    try:
        return Experiment.model_validate_json(config_json)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"RAG_AB_EXPERIMENT is invalid: {problems}") from None


def arm_for(user_id: str, experiment: Experiment) -> str:
    """Deterministic: the same person always gets the same arm of the same experiment."""
    digest = hashlib.sha256(f"{experiment.name}:{user_id}".encode()).digest()
    names = experiment.arm_names
    return names[int.from_bytes(digest[:8], "big") % len(names)]


def assign_arm(user_id: str, settings: Settings) -> tuple[str | None, dict[str, Any]]:
    """(arm name, engine overrides) for this user; (None, {}) when no experiment runs.

    A malformed experiment is logged as an error and switched off: questions keep being answered.
    """
    try:
        experiment = load_experiment(settings)
    except ConfigError as exc:
        if str(exc) not in _reported:  # once per bad configuration, not once per question
            _reported.add(str(exc))
            log.error(str(exc), extra={"event": "ab_experiment_invalid"})
        return None, {}
    if experiment is None:
        return None, {}
    arm = arm_for(user_id, experiment)
    return arm, dict(experiment.arms[arm])
