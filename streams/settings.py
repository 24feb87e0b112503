"""Settings: one frozen object, read once from a TOML file and ``PLACEWATCH_*`` variables.

Precedence: built-in defaults < ``--config FILE`` < environment. Every key is documented in
docs/configuration.md; an unknown key or a bad value is a :class:`ConfigError` naming the key.
Environment values are parsed as TOML values when they parse (``PLACEWATCH_MIN_GROUP_SUPPORT=50``,
``PLACEWATCH_ATTRIBUTES='["team", "region"]'``), otherwise taken as plain strings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import os
import re
import tomllib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from detectors.config import DEFAULT_SAMPLE_KEY, CoreConfig
from streams.audit.signing import KEY_ENV, Signer, load_signer
from streams.errors import ConfigError

__all__ = ["ENV_PREFIX", "KafkaSettings", "Settings", "endpoint_of", "load_settings"]

ENV_PREFIX = "PLACEWATCH_"
_CORE_KEYS = {f.name for f in dataclasses.fields(CoreConfig)}
_SECRET_KEYS = {"audit_sample_key"}
MIN_SAMPLE_KEY_BYTES = 16
"""A shorter ``audit_sample_key`` is logged as weak at the start of a live run."""
_URL_KEYS = ("alertmanager_urls", "webhook_urls")
_TOPIC = re.compile(r"[a-zA-Z0-9._-]{1,249}")
_SECURITY = ("PLAINTEXT", "SSL", "SASL_SSL")
_SASL = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """The Kafka source's and producer's settings (``kafka_*`` keys, docs/configuration.md)."""

    events_topic: str = "placewatch.events"
    """Placements and outcomes together, keyed by ``decision_id``."""
    dead_letter_topic: str = "placewatch.dead-letters"
    alerts_topic: str = "placewatch.alerts"
    audit_topic: str = "placewatch.audit-records"
    group_id: str = "placewatch"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    """Only from ``PLACEWATCH_KAFKA_SASL_PASSWORD`` or ``kafka_sasl_password_file``."""
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""

    @property
    def internal_topics(self) -> tuple[tuple[str, int, str], ...]:
        """Every topic placewatch writes, besides the events topic: (name, partitions,
        cleanup policy). One partition each keeps their records in the order they happened."""
        return ((self.dead_letter_topic, 1, "delete"), (self.alerts_topic, 1, "delete"),
                (self.audit_topic, 1, "delete"))


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a run needs; ``core`` goes to the processing core as plain values."""

    core: CoreConfig = field(default_factory=CoreConfig)
    metrics_host: str = "127.0.0.1"
    """Address the ``/metrics`` endpoint listens on; loopback unless configured."""
    metrics_port: int = 9469
    currency: str = "USD"
    log_format: str = "text"
    """``text`` (human, coloured) or ``json`` (one object per line)."""
    log_level: str = "INFO"
    audit_worker: str = "auto"
    """Where deep audits run: ``inline``, ``process``, or ``auto`` (replay inline, live runs in
    a worker process)."""
    audit_backlog: int = 1000
    """Sampled decisions a worker may hold unexplained before new ones are recorded deferred."""
    audit_retention_days: int = 400
    """Days audit records are kept before ``audit purge`` may delete them (legal holds aside)."""
    audit_signing_key: str = field(default="", repr=False)
    """Ed25519 key that signs retention records and checkpoints; only from
    ``PLACEWATCH_AUDIT_SIGNING_KEY`` or ``audit_signing_key_file`` (streams/audit/signing.py)."""
    audit_signing_key_file: str = ""
    """File holding the signing key (mode 600)."""
    audit_witness_path: str = ""
    """File outside the data directory that every signed checkpoint is appended to."""
    history_retention_days: int = 400
    """Days of history windows (the weekly report's input) kept in a run directory."""
    report_timezone: str = "UTC"
    """IANA time zone of the weekly report's weeks (Monday 00:00 local) and of its schedule."""
    report_time: str = "06:00"
    """Local time on Mondays at which a live run writes the report of the week just ended
    (``HH:MM``; empty: never)."""
    audit_verify_interval_s: float = 3600.0
    """Seconds between re-verifications of the audit chain by a live run (0: at start only)."""
    alertmanager_urls: tuple[str, ...] = ()
    """Alertmanager base URLs (every one of an HA pair) that a live run sends alerts to
    directly, through the durable outbox (streams/sinks/outbox.py)."""
    webhook_urls: tuple[str, ...] = ()
    """URLs that a live run POSTs every alert edge to (its alerts.jsonl line), in order."""
    alertmanager_resend_s: float = 60.0
    """Seconds between re-sends of a firing alert (Alertmanager wants 30 s to 3 min)."""
    alertmanager_extra_labels: tuple[tuple[str, str], ...] = ()
    """Labels added to every directly delivered alert (match Prometheus's external_labels)."""
    alertmanager_resolve_grace_s: float = 60.0
    """Seconds after a resolution the direct path's endsAt lies (the rules' own end comes
    within a scrape and an evaluation, so the two paths agree)."""
    runbook_base: str = "alerts/runbooks/"
    """Prefix of every alert's runbook_url on the direct path (the rules use the same)."""
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    """The Kafka source (``run --source kafka://...``)."""
    source: str = ""
    """Where the settings came from, for the log (never their values)."""
    config_file: str = ""
    """The TOML file they were read from ("" if none): a child process the service starts
    (the weekly report) reads the same one."""

    @property
    def config_hash(self) -> str:
        """SHA-256 of the effective configuration without its secrets.

        ``audit_sample_key`` does not enter it (nor does any signing key, which is not part of
        the core's configuration), so the hash, printed in every audit record, every summary
        and the weekly report, gives nobody a way to test guesses of the key. ``audit replay``
        checks the key another way, through the ``sample_draw`` its records carry.
        """
        return self._hash_of_configuration(key=None, scheme={"scheme": 2})

    @property
    def legacy_config_hash(self) -> str:
        """The hash that records written before the key was taken out of :attr:`config_hash`
        carry (the key entered it as its unsalted SHA-256): ``audit replay`` still accepts
        it, so stores from before the change stay reproducible."""
        return self._hash_of_configuration(
            key=hashlib.sha256(self.core.audit_sample_key.encode()).hexdigest(), scheme={})

    def _hash_of_configuration(self, key: str | None, scheme: dict[str, int]) -> str:
        """SHA-256 of the core's settings and the currency as sorted JSON, with
        ``audit_sample_key`` replaced by ``key`` (left out when None)."""
        core = dataclasses.asdict(self.core)
        del core["audit_sample_key"]
        if key is not None:
            core["audit_sample_key"] = key
        body = {"core": core, "currency": self.currency, **scheme}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def sample_key_weakness(self) -> str:
        """Why ``audit_sample_key`` fails to keep the sample unpredictable, or ``""``.

        Every audit record carries its draw, so whoever reads the store can test guesses of
        the key offline: it has to be a random secret, not a word.
        """
        key = self.core.audit_sample_key
        if key == DEFAULT_SAMPLE_KEY:
            return ("it is the public default, so a scheduler can predict which decisions are "
                    "audited; set a random one (python3 -c 'import secrets; "
                    "print(secrets.token_hex(16))') in PLACEWATCH_AUDIT_SAMPLE_KEY")
        if len(key.encode()) < MIN_SAMPLE_KEY_BYTES:
            return (f"it is {len(key.encode())} bytes; anyone holding the audit records can "
                    "test guesses of it against their draws, so use at least "
                    f"{MIN_SAMPLE_KEY_BYTES} random bytes (secrets.token_hex(16))")
        return ""

    def signer(self) -> Signer | None:
        """The audit signing key, if one is configured (:mod:`streams.audit.signing`)."""
        key_file = Path(self.audit_signing_key_file) if self.audit_signing_key_file else None
        env = {KEY_ENV: self.audit_signing_key} if self.audit_signing_key else {}
        return load_signer(key_file, env)

    @property
    def witness(self) -> Path | None:
        return Path(self.audit_witness_path) if self.audit_witness_path else None

    def redacted(self) -> dict[str, Any]:
        """The effective settings, safe to print (secrets replaced)."""
        out: dict[str, Any] = dataclasses.asdict(self.core)
        for key in _SECRET_KEYS:
            out[key] = "<redacted>"
        for f in dataclasses.fields(self):
            if f.name not in ("core", "source", "kafka", "config_file"):
                out[f.name] = getattr(self, f.name)
        if self.audit_signing_key:
            out["audit_signing_key"] = "<redacted>"
        for f in dataclasses.fields(self.kafka):
            value = getattr(self.kafka, f.name)
            out[f"kafka_{f.name}"] = "<redacted>" if f.name == "sasl_password" and value else value
        for key in _URL_KEYS:  # credentials may ride in a URL: show where, not how
            out[key] = [endpoint_of(url) + ("/…" if urllib.parse.urlsplit(url).path.strip("/")
                                            else "") for url in out[key]]
        out["alertmanager_extra_labels"] = dict(self.alertmanager_extra_labels)
        out["wait_gap_limits"] = dict(self.core.wait_gap_limits)  # as it is written in TOML
        return out


def endpoint_of(url: str) -> str:
    """Where a URL points, safe for logs and metric labels: no credentials, path, query or
    fragment (a webhook's path can be its secret).

    >>> endpoint_of("https://user:secret@am.example:9093/hooks/T0/SECRET?token=x")
    'https://am.example:9093'
    >>> endpoint_of("http://[::1]:9093/")
    'http://[::1]:9093'
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}"


def _as_tuple(key: str, value: Any) -> Any:
    if key == "attribute_pairs":
        if not isinstance(value, list):
            raise ConfigError(f"{key}: must be a list of two-key lists, got {value!r}")
        return tuple(tuple(p) if isinstance(p, list) else p for p in value)
    if key == "wait_gap_limits":
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: must be a table of attribute keys to numbers, such as "
                              f"{{team = 0.10}}, got {value!r}")
        return tuple(sorted((k, float(v) if isinstance(v, int) and not isinstance(v, bool)
                             else v) for k, v in value.items()))
    if key in ("audit_cpu_sizes", "audit_memory_sizes_gb", "audit_gpu_sizes",
               "audit_deadline_extensions_h"):
        if not isinstance(value, list):
            raise ConfigError(f"{key}: must be a list of numbers, got {value!r}")
        return tuple(float(v) if isinstance(v, int) and not isinstance(v, bool) else v
                     for v in value)
    if key in ("attributes", "preferred_tiers", "audit_redact_fields"):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{key}: must be a list of strings, got {value!r}")
        return tuple(value)
    return value


def _env_values(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, text in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        key = name[len(ENV_PREFIX):].lower()
        try:
            out[key] = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = text
    return out


def _check_host(host: Any) -> str:
    if not isinstance(host, str) or not host:
        raise ConfigError(f"metrics_host: must be an IP address or host name, got {host!r}")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost" and not all(p.isalnum() or "-" in p for p in host.split(".")):
            raise ConfigError(f"metrics_host: not an address or host name: {host!r}") from None
    return host


def _urls(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key}: must be a list of http(s) URLs, got {type(value).__name__}")
    for url in value:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            # never echo the value: it may hold credentials
            raise ConfigError(f"{key}: not an http(s) URL with a host: "
                              f"{parts.scheme or '?'}://{parts.hostname or '?'}...")
    return tuple(value)


def _delivery(shell: Mapping[str, Any]) -> dict[str, Any]:
    """The direct alert delivery's keys, validated."""
    resend = shell.get("alertmanager_resend_s", 60.0)
    if (not isinstance(resend, int | float) or isinstance(resend, bool)
            or not 1.0 <= resend <= 3600.0):
        raise ConfigError(f"alertmanager_resend_s: must be seconds in 1..3600, got {resend!r}")
    grace = shell.get("alertmanager_resolve_grace_s", 60.0)
    if (not isinstance(grace, int | float) or isinstance(grace, bool)
            or not 0.0 <= grace <= 3600.0):
        raise ConfigError("alertmanager_resolve_grace_s: must be seconds in 0..3600, got "
                          f"{grace!r}")
    labels = shell.get("alertmanager_extra_labels", {})
    if not isinstance(labels, dict) or not all(
            isinstance(k, str) and re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", k)
            and isinstance(v, str) for k, v in labels.items()):
        raise ConfigError("alertmanager_extra_labels: must be a table of label names to "
                          f"strings, got {labels!r}")
    reserved = set(labels) & {"alertname", "severity", "kind", "attribute", "group", "metric",
                              "fingerprint"}
    if reserved:
        raise ConfigError(f"alertmanager_extra_labels: {', '.join(sorted(reserved))} "
                          "are placewatch's own labels")
    base = shell.get("runbook_base", "alerts/runbooks/")
    if not isinstance(base, str):
        raise ConfigError(f"runbook_base: must be a string, got {base!r}")
    return {
        "alertmanager_urls": _urls("alertmanager_urls", shell.get("alertmanager_urls", [])),
        "webhook_urls": _urls("webhook_urls", shell.get("webhook_urls", [])),
        "alertmanager_resend_s": float(resend),
        "alertmanager_resolve_grace_s": float(grace),
        "alertmanager_extra_labels": tuple(sorted(labels.items())),
        "runbook_base": base,
    }


def _kafka(shell: Mapping[str, Any], from_file: Mapping[str, Any]) -> KafkaSettings:
    """The ``kafka_*`` keys, validated; the SASL password only from the environment or a
    file, never from the configuration file itself (it would end up in version control)."""
    if "kafka_sasl_password" in from_file:
        raise ConfigError("kafka_sasl_password: not accepted in a configuration file; set "
                          "PLACEWATCH_KAFKA_SASL_PASSWORD or kafka_sasl_password_file")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(KafkaSettings):
        key = f"kafka_{f.name}"
        if key in shell:
            value = shell[key]
            if not isinstance(value, str):
                raise ConfigError(f"{key}: must be a string, got {type(value).__name__}")
            values[f.name] = value
    for name in ("events_topic", "dead_letter_topic", "alerts_topic", "audit_topic"):
        topic = values.get(name)
        if topic is not None and (not _TOPIC.fullmatch(topic) or topic in (".", "..")):
            raise ConfigError(f"kafka_{name}: not a Kafka topic name (letters, digits, '.', "
                              f"'_', '-'; at most 249): {topic!r}")
    if "group_id" in values and not values["group_id"]:
        raise ConfigError("kafka_group_id: must not be empty")
    protocol = values.get("security_protocol", "PLAINTEXT").upper()
    if protocol == "SASL_PLAINTEXT":
        raise ConfigError("kafka_security_protocol: SASL_PLAINTEXT sends the password in clear "
                          "text and is refused; use SASL_SSL")
    if protocol not in _SECURITY:
        raise ConfigError(f"kafka_security_protocol: must be one of {', '.join(_SECURITY)}, "
                          f"got {protocol!r}")
    values["security_protocol"] = protocol
    mechanism = values.get("sasl_mechanism", "PLAIN").upper()
    if mechanism not in _SASL:
        raise ConfigError(f"kafka_sasl_mechanism: must be one of {', '.join(_SASL)}, got "
                          f"{mechanism!r}")
    values["sasl_mechanism"] = mechanism
    password_file = shell.get("kafka_sasl_password_file", "")
    if not isinstance(password_file, str):
        raise ConfigError("kafka_sasl_password_file: must be a path")
    if password_file:
        try:
            values["sasl_password"] = Path(password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"kafka_sasl_password_file: cannot read {password_file}: "
                              f"{exc.strerror or exc}") from exc
    if protocol == "SASL_SSL" and not (values.get("sasl_username") and
                                       values.get("sasl_password")):
        raise ConfigError("kafka_security_protocol SASL_SSL needs kafka_sasl_username and a "
                          "password (PLACEWATCH_KAFKA_SASL_PASSWORD or "
                          "kafka_sasl_password_file)")
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = values.get(name, "")
        if path and not Path(path).is_file():
            raise ConfigError(f"kafka_{name}: no such file: {path}")
    return KafkaSettings(**values)


def load_settings(config_file: Path | None = None,
                  environ: Mapping[str, str] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> Settings:
    """Build :class:`Settings` from a TOML file, the environment and explicit overrides."""
    values: dict[str, Any] = {}
    from_file: dict[str, Any] = {}
    sources = ["defaults"]
    if config_file is not None:
        try:
            from_file = tomllib.loads(config_file.read_text(encoding="utf-8"))
            values.update(from_file)
        except FileNotFoundError:
            raise ConfigError(f"--config: no such file: {config_file}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--config: cannot read {config_file}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"--config: {config_file} is not valid TOML: {exc}") from exc
        sources.append(str(config_file))
    env = _env_values(os.environ if environ is None else environ)
    if env:
        sources.append("environment")
    values.update(env)
    values.update(overrides or {})
    shell_keys = ({f.name for f in dataclasses.fields(Settings)}
                  - {"core", "source", "kafka", "config_file"}
                  | {f"kafka_{f.name}" for f in dataclasses.fields(KafkaSettings)}
                  | {"kafka_sasl_password_file"})
    unknown = sorted(set(values) - _CORE_KEYS - shell_keys)
    if unknown:
        raise ConfigError(f"unknown configuration key(s): {', '.join(unknown)}; "
                          "see docs/configuration.md for the valid keys")
    core_values = {k: _as_tuple(k, v) for k, v in values.items() if k in _CORE_KEYS}
    for key in ("orphan_wait_s", "placement_ttl_s", "override_max_age_s", "max_clock_jump_s",
                "override_resolve_after_s",
                "disparity_ratio_threshold", "confidence", "audit_sample_rate",
                "false_alarms_per_million", "drift_prior", "trend_alpha", "wait_gap_limit",
                "trend_min_growth", "audit_cost_threshold", "shadow_train_rate",
                "audit_open_alert_rate"):
        if isinstance(core_values.get(key), int) and not isinstance(core_values[key], bool):
            core_values[key] = float(core_values[key])
    try:
        core = CoreConfig(**core_values)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    shell = {k: v for k, v in values.items() if k in shell_keys}
    port = shell.get("metrics_port", 9469)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ConfigError(f"metrics_port: must be an integer in 0..65535, got {port!r}")
    if shell.get("log_format", "text") not in ("text", "json"):
        raise ConfigError(f"log_format: must be 'text' or 'json', got {shell['log_format']!r}")
    level = str(shell.get("log_level", "INFO")).upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"log_level: must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
    worker = shell.get("audit_worker", "auto")
    if worker not in ("auto", "inline", "process"):
        raise ConfigError(f"audit_worker: must be 'auto', 'inline' or 'process', got {worker!r}")
    backlog = shell.get("audit_backlog", 1000)
    if not isinstance(backlog, int) or isinstance(backlog, bool) or backlog < 1:
        raise ConfigError(f"audit_backlog: must be an integer >= 1, got {backlog!r}")
    retention = shell.get("audit_retention_days", 400)
    if not isinstance(retention, int) or isinstance(retention, bool) or retention < 1:
        raise ConfigError(f"audit_retention_days: must be an integer >= 1, got {retention!r}")
    history_days = shell.get("history_retention_days", 400)
    if not isinstance(history_days, int) or isinstance(history_days, bool) or history_days < 8:
        raise ConfigError("history_retention_days: must be an integer >= 8 (a report compares "
                          f"a week with the one before), got {history_days!r}")
    report_tz = shell.get("report_timezone", "UTC")
    try:
        ZoneInfo(report_tz if isinstance(report_tz, str) and report_tz else "-")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"report_timezone: must be an IANA time zone such as UTC or "
                          f"Europe/Berlin, got {report_tz!r}") from exc
    report_time = shell.get("report_time", "06:00")
    if not (isinstance(report_time, str)
            and (report_time == "" or re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", report_time))):
        raise ConfigError(f"report_time: must be HH:MM (24-hour) or empty, got {report_time!r}")
    verify_every = shell.get("audit_verify_interval_s", 3600.0)
    if (not isinstance(verify_every, int | float) or isinstance(verify_every, bool)
            or not 0 <= verify_every < float("inf")):
        raise ConfigError("audit_verify_interval_s: must be a number of seconds >= 0, got "
                          f"{verify_every!r}")
    delivery = _delivery(shell)
    if "audit_signing_key" in from_file:
        raise ConfigError("audit_signing_key: not accepted in a configuration file; set "
                          "PLACEWATCH_AUDIT_SIGNING_KEY or audit_signing_key_file")
    signing: dict[str, str] = {}
    for key in ("audit_signing_key", "audit_signing_key_file", "audit_witness_path"):
        value = shell.get(key, "")
        if not isinstance(value, str):
            raise ConfigError(f"{key}: must be a string, got {type(value).__name__}")
        signing[key] = value
    currency = shell.get("currency", "USD")
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha()):
        raise ConfigError(f"currency: must be a three-letter code such as USD, got {currency!r}")
    return Settings(
        core=core,
        metrics_host=_check_host(shell.get("metrics_host", "127.0.0.1")),
        metrics_port=port,
        currency=currency.upper(),
        log_format=shell.get("log_format", "text"),
        log_level=level,
        audit_worker=worker,
        audit_backlog=backlog,
        audit_retention_days=retention,
        audit_signing_key=signing["audit_signing_key"],
        audit_signing_key_file=signing["audit_signing_key_file"],
        audit_witness_path=signing["audit_witness_path"],
        history_retention_days=history_days,
        report_timezone=report_tz,
        report_time=report_time,
        audit_verify_interval_s=float(verify_every),
        **delivery,
        kafka=_kafka(shell, from_file),
        source=" < ".join(sources),
        config_file=str(config_file) if config_file is not None else "",
    )
