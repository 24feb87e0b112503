"""Settings: TOML file, environment, precedence, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.errors import ConfigError
from streams.settings import load_settings


def test_defaults_are_safe() -> None:
    s = load_settings(environ={})
    assert s.metrics_host == "127.0.0.1"
    assert s.core.audit_sample_rate == 0.02
    assert s.core.preferred_tiers == ("spot", "reserved")
    assert s.core.attributes is None


def test_file_then_environment(tmp_path: Path) -> None:
    path = tmp_path / "pw.toml"
    path.write_text('attributes = ["team", "region"]\nattribute_pairs = [["team", "region"]]\n'
                    'min_group_support = 50\npreferred_tiers = ["spot"]\n'
                    'audit_sample_rate = 0.1\n')
    s = load_settings(path, environ={"PLACEWATCH_MIN_GROUP_SUPPORT": "75",
                                     "PLACEWATCH_PREFERRED_TIERS": "spot,reserved"})
    assert s.core.attributes == ("team", "region")
    assert s.core.attribute_pairs == (("team", "region"),)
    assert s.core.min_group_support == 75
    assert s.core.preferred_tiers == ("spot", "reserved")
    assert s.core.audit_sample_rate == 0.1
    assert "environment" in s.source


@pytest.mark.parametrize(("text", "key"), [
    ("min_group_support = -3", "min_group_support"),
    ("audit_sample_rate = 2", "audit_sample_rate"),
    ("preferred_tiers = []", "preferred_tiers"),
    ("preferred_tiers = [1]", "preferred_tiers"),
    ('attribute_pairs = [["team"]]', "attribute_pairs"),
    ("metrics_port = 70000", "metrics_port"),
    ('log_format = "xml"', "log_format"),
    ("colour = 1", "colour"),
])
def test_bad_values_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=key):
        load_settings(path, environ={})


def test_bad_environment_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match="min_group_support"):
        load_settings(environ={"PLACEWATCH_MIN_GROUP_SUPPORT": "many"})


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "nope.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("attributes = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, environ={})


def test_secret_key_never_shown() -> None:
    s = load_settings(environ={"PLACEWATCH_AUDIT_SAMPLE_KEY": "hunter2"})
    assert s.core.audit_sample_key == "hunter2"
    assert "hunter2" not in repr(s.redacted())
    assert "hunter2" not in s.config_hash
    # the hash gives no way to test a guess: it is the same whatever the key
    other = load_settings(environ={"PLACEWATCH_AUDIT_SAMPLE_KEY": "correct horse"})
    assert other.config_hash == s.config_hash
    assert other.legacy_config_hash != s.legacy_config_hash  # the old scheme leaked it
    changed = load_settings(environ={"PLACEWATCH_AUDIT_SAMPLE_KEY": "hunter2",
                                     "PLACEWATCH_AUDIT_SAMPLE_RATE": "0.05"})
    assert changed.config_hash != s.config_hash


def test_a_default_or_short_sampling_key_is_called_weak() -> None:
    assert "public default" in load_settings(environ={}).sample_key_weakness()
    short = load_settings(environ={"PLACEWATCH_AUDIT_SAMPLE_KEY": "hunter2"})
    assert "7 bytes" in short.sample_key_weakness()
    strong = load_settings(environ={"PLACEWATCH_AUDIT_SAMPLE_KEY": "9f" * 16})
    assert strong.sample_key_weakness() == ""
