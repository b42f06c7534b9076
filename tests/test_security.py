"""No credential lands in params, lock files, store attributes, provenance or reports; servers bind to
loopback by default."""

import json
import re
from pathlib import Path

import pytest
import yaml
import zarr

from tests.pipeline_fixtures import ROOT, deep_update, tiny_params
from udcshield.config import params_from_dict
from udcshield.pipeline import simulate
from udcshield.pipeline.layout import Layout
from udcshield.store.provenance import input_digests, make_provenance, redact_credentials

# Credentials a production machine may hold in its environment (names as Prefect, cloud SDKs and
# databases use them); their values must never be recorded.
ENV_SECRETS = {
    "PREFECT_API_KEY": "pnu_a1b2c3d4e5f6secretkey",
    "PREFECT_API_AUTH_STRING": "admin:horse-battery-staple",
    "PREFECT_SERVER_API_AUTH_STRING": "admin:horse-battery-staple",
    "PREFECT_API_DATABASE_CONNECTION_URL": "postgresql+asyncpg://prefect:db-pass-0f9e8d@db.internal:5432/prefect",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI-aws-secret",
    "GITHUB_TOKEN": "ghp_tokenvalue1234567890",
    "DVC_REMOTE_PASSWORD": "dvc-remote-pw-77aa",
    "UDCSHIELD_STORE_URL": "s3://AKIAEXAMPLE:s3-secret-99@bucket/udc",
}
SECRET_FRAGMENTS = ("pnu_a1b2c3d4e5f6secretkey", "horse-battery-staple", "db-pass-0f9e8d", "wJalrXUtnFEMI",
                    "ghp_tokenvalue", "dvc-remote-pw-77aa", "s3-secret-99", "AKIAEXAMPLE")
USERINFO = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s@*]+:[^/\s@]*@")
FORBIDDEN_KEY = re.compile(r"^(env|environ|environment|host|hostname|node|user|username)$", re.I)
SECRET_KEY_NAME = re.compile(r"(password|passwd|secret|token|api_key|apikey|auth_string|credential)", re.I)


def leaked(text: str) -> list[str]:
    """Secret values, environment variable names or URL credentials found in ``text``."""
    found = [s for s in SECRET_FRAGMENTS if s in text]
    found += [name for name in ENV_SECRETS if name in text]
    found += USERINFO.findall(text)
    return found


def keys(tree) -> list[str]:
    if isinstance(tree, dict):
        return [str(k) for k in tree] + [k for v in tree.values() for k in keys(v)]
    if isinstance(tree, (list, tuple)):
        return [k for v in tree for k in keys(v)]
    return []


@pytest.fixture
def secret_env(monkeypatch):
    for name, value in ENV_SECRETS.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("url,expected", [
    ("s3://AKIAEXAMPLE:s3-secret-99@bucket/udc", "s3://***@bucket/udc"),
    ("postgresql+asyncpg://prefect:p@ss@db.internal:5432/prefect", "postgresql+asyncpg://***@db.internal:5432/prefect"),
    ("https://ghp_tokenvalue@github.com/org/repo.git", "https://***@github.com/org/repo.git"),
    ("see http://u:p@h/x and ftp://v:w@k", "see http://***@h/x and ftp://***@k"),
    ("http://host/path@version", "http://host/path@version"),
    ("memory://store/train.zarr", "memory://store/train.zarr"),
    ("data/simulated/train.zarr", "data/simulated/train.zarr"),
])
def test_redact_credentials_strings(url, expected):
    assert redact_credentials(url) == expected


def test_redact_credentials_nested_keeps_structure():
    value = {"a": ["x", ("https://u:pw@h/p", 3)], "https://k:v@h": 1.5, "b": None}
    assert redact_credentials(value) == {"a": ["x", ("https://***@h/p", 3)], "https://***@h": 1.5, "b": None}


def test_provenance_records_no_environment_and_no_url_credentials(secret_env, tmp_path):
    art = tmp_path / "in.bin"
    art.write_bytes(b"\x00\x01")
    prov = make_provenance(
        "attack", {"store": ENV_SECRETS["UDCSHIELD_STORE_URL"], "budgets": [1, 2]},
        inputs={"adversarial": art}, seeds={"seed": 3},
        extra={"remote": ENV_SECRETS["PREFECT_API_DATABASE_CONNECTION_URL"]})
    text = json.dumps(prov)
    assert leaked(text) == [], leaked(text)
    assert prov["params"]["store"] == "s3://***@bucket/udc"
    assert prov["remote"] == "postgresql+asyncpg://***@db.internal:5432/prefect"
    assert prov["params"]["budgets"] == [1, 2] and prov["inputs"]["adversarial"]["path"] == art.as_posix()
    assert not [k for k in keys(prov) if FORBIDDEN_KEY.match(k)], keys(prov)


def test_input_digests_show_urls_without_credentials(tmp_path, monkeypatch):
    art = tmp_path / "a.zarr"
    art.mkdir()
    (art / "zarr.json").write_text("{}")
    url = "file://alice:pw-file-1@localhost" + art.as_posix()
    monkeypatch.setattr("udcshield.store.provenance.tree_sha256", lambda p: "0" * 64)
    assert input_digests({"a": url})["a"]["path"] == "file://***@localhost" + art.as_posix()
    assert input_digests({"b": art})["b"]["path"] == art.as_posix()


def test_tiny_simulate_run_stores_no_credentials(secret_env, tmp_path):
    """A real stage run with credentials in the environment: scan every file it wrote."""
    params = params_from_dict(deep_update(tiny_params(), {"simulate": {"train_patches_per_image": 2,
                                                                       "test_patches_per_image": 2}}))
    layout = Layout(tmp_path / "data")
    simulate.run(params, layout)
    files = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    attrs_files = [p for p in files if p.name == "zarr.json"]
    assert attrs_files and any(p.parent.name == "train.zarr" for p in attrs_files)
    for path in attrs_files:
        text = path.read_text()
        assert leaked(text) == [], (path, leaked(text))
    for path in files:  # chunk bytes too: nothing may carry a secret value
        data = path.read_bytes()
        assert not [s for s in SECRET_FRAGMENTS if s.encode() in data], path
    attrs = dict(zarr.open_group(str(layout.train_store), mode="r").attrs)
    assert attrs["stage"] == "simulate" and "code" in attrs
    assert not [k for k in keys(attrs) if FORBIDDEN_KEY.match(k)], keys(attrs)


@pytest.mark.parametrize("name", ["params.yaml", "dvc.yaml", "dvc.lock", "prefect.yaml"])
def test_repository_configuration_holds_no_credentials(name):
    path = ROOT / name
    if not path.exists():
        pytest.skip(f"{name} is not in this checkout")
    text = path.read_text()
    assert USERINFO.findall(text) == [], name
    assert [k for k in keys(yaml.safe_load(text)) if SECRET_KEY_NAME.search(k)] == [], name


def test_prefect_servers_default_to_loopback(monkeypatch, tmp_path):
    """The Prefect API server and the runner's webserver bind to loopback unless configured."""
    import os

    from prefect.settings import Settings

    for name in list(os.environ):
        if name.startswith("PREFECT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))  # no profile with overrides
    settings = Settings()
    assert settings.server.api.host == "127.0.0.1"
    assert settings.runner.server.host in ("localhost", "127.0.0.1")
    assert settings.runner.server.enable is False
