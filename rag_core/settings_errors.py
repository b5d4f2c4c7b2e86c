"""Invalid settings as one line each: the variable, what is wrong with it, and an example of a good value.

pydantic reports bad environment values as a traceback (a JSON value that does not parse) or a multi-line dump
(a value of the wrong type); `config_error` turns either into a `ConfigError` every command prints the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import AliasChoices, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, DotEnvSettingsSource, EnvSettingsSource, SettingsError

from rag_core.errors import ConfigError

# Examples for settings whose default says little about their shape.
_EXAMPLES = {
    "sources": """'[{"name": "wiki", "kind": "confluence", "path": "exports/wiki.zip"}]'""",
    "channel_sources": """'{"C0123ABC": ["wiki"]}'""",
    "dm_sources": """'["wiki"]'""",
    "admin_user_ids": """'["U0123ABC"]'""",
    "ab_experiment": """'{"name": "rerank", "arms": {"a": {}, "b": {"use_reranker": false}}}'""",
    "model_prices": """'{"gpt-4o-mini": {"input": 0.15, "output": 0.6}}'""",
}
_MAX_SHOWN = 40  # characters of a bad value quoted back


def config_error(exc: ValidationError | SettingsError, settings_cls: type[BaseSettings]) -> ConfigError:
    """One line per bad setting of `settings_cls`, from the error pydantic(-settings) raised."""
    if isinstance(exc, ValidationError):
        lines = [_validation_line(err, settings_cls) for err in exc.errors(include_url=False)]
    else:
        lines = _undecodable_lines(settings_cls) or [f"settings could not be read: {exc}"]
        try:  # the other settings, read as if the undecodable ones were unset, may be wrong too
            _skipping_undecodable(settings_cls)()
        except ValidationError as more:
            lines += [_validation_line(err, settings_cls) for err in more.errors(include_url=False)]
    return ConfigError("\n".join(dict.fromkeys(lines)))


def env_name(name: str, field: FieldInfo) -> str:
    """The environment variable a field is read from."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    if isinstance(alias, str):
        return alias
    return f"RAG_{name.upper()}"


def example(name: str, field: FieldInfo) -> str:
    """`VAR=value` with a value this field accepts."""
    var = env_name(name, field)
    if name in _EXAMPLES:
        return f"{var}={_EXAMPLES[name]}"
    annotation = field.annotation
    options = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) is Literal:
        return f"{var}={options[0]}"
    default = field.default
    if isinstance(default, bool) or annotation is bool:
        return f"{var}={'true' if default is None else str(default).lower()}"
    if isinstance(default, int | float | str | Path) and not isinstance(default, SecretStr):
        return f"{var}={default}"
    if int in options or annotation is int:
        return f"{var}=10"
    if float in options or annotation is float:
        return f"{var}=1.5"
    return f"{var}=value"


def _validation_line(err: Any, settings_cls: type[BaseSettings]) -> str:
    loc = [str(p) for p in err["loc"]]
    name = loc[0] if loc else ""
    field = settings_cls.model_fields.get(name)
    if field is None:
        return f"{name or 'settings'}: {_problem(err)}"
    where = env_name(name, field) + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in loc[1:])
    secret = _is_secret(field)
    shown = "" if secret or err["type"] == "missing" else f"{_short(err.get('input'))} "
    return f"{where}: {shown}{_problem(err)}; e.g. {example(name, field)}"


def _problem(err: Any) -> str:
    if err["type"] == "missing":
        return "is required"
    msg = str(err["msg"]).replace("Input should be", "should be")
    return msg.split(", unable to")[0].split(", got")[0]


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = repr(text) if isinstance(value, str) else text
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"


def _is_secret(field: FieldInfo) -> bool:
    return field.annotation is SecretStr or SecretStr in get_args(field.annotation)


def _undecodable_lines(settings_cls: type[BaseSettings]) -> list[str]:
    """Every JSON-valued setting (environment or .env file) whose value is not valid JSON."""
    lines: list[str] = []
    sources: list[EnvSettingsSource] = [EnvSettingsSource(settings_cls)]
    env_file = settings_cls.model_config.get("env_file")
    if env_file:
        sources.append(DotEnvSettingsSource(settings_cls, env_file=env_file))
    for source in sources:
        for name, field in settings_cls.model_fields.items():
            value, _, is_complex = source.get_field_value(field, name)
            if not isinstance(value, str):
                continue
            try:
                source.prepare_field_value(name, field, value, is_complex)
            except ValueError as exc:
                cause = exc.__cause__ or exc
                why = "is empty" if not value.strip() else f"is not valid JSON ({_json_reason(cause)})"
                lines.append(f"{env_name(name, field)}: {why}; e.g. {example(name, field)}")
    return lines


class _SkipUndecodable(EnvSettingsSource):
    """Leaves out a value that is not valid JSON (already reported by `_undecodable_lines`) instead of raising."""

    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any:
        try:
            return super().prepare_field_value(field_name, field, value, value_is_complex)
        except ValueError:
            return None


class _LenientEnv(_SkipUndecodable):
    pass


class _LenientDotEnv(_SkipUndecodable, DotEnvSettingsSource):
    pass


def _skipping_undecodable(settings_cls: type[BaseSettings]) -> type[BaseSettings]:
    """`settings_cls` reading the environment and .env file but leaving out values that are not valid JSON."""

    def sources(
        cls: type[BaseSettings],
        settings_cls: type[BaseSettings],
        init_settings: Any,
        env_settings: Any,
        dotenv_settings: Any,
        file_secret_settings: Any,
    ) -> tuple[Any, ...]:
        env_file = settings_cls.model_config.get("env_file")
        lenient = _LenientEnv(settings_cls), _LenientDotEnv(settings_cls, env_file=env_file)
        return init_settings, *lenient, file_secret_settings

    return type("Checked", (settings_cls,), {"settings_customise_sources": classmethod(sources)})


def _json_reason(exc: BaseException) -> str:
    return exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc).split("\n")[0]
