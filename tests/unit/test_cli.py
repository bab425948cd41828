"""The command line: decode from a file or stdin, check-config, exit codes."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from breakwater.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "k8s"


def test_decode_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", str(FIXTURES / "core.v1.Service.pb")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((FIXTURES / "core.v1.Service.json").read_text())


def test_decode_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    data = (FIXTURES / "networking.k8s.io.v1.Ingress.pb").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert main(["decode", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "Ingress"


def test_decode_error_names_the_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"k8s:enc:kms:v2:x:...")))
    assert main(["decode", "-", "--key", "/registry/secrets/a/b"]) == 1
    error = capsys.readouterr().err
    assert "EncryptedValueError" in error and "/registry/secrets/a/b" in error


def test_check_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "watcher.yml"
    path.write_text("catalog:\n  ingress_class: edge\n")
    assert main(["check-config", "--config", str(path), "--mode", "nodeport"]) == 0
    effective = json.loads(capsys.readouterr().out)
    assert effective["catalog"] == {
        **effective["catalog"],
        "ingress_class": "edge",
        "mode": "nodeport",
    }
    path.write_text("catalog:\n  ingress_clas: edge\n")
    assert main(["check-config", "--config", str(path)]) == 2
    assert "unknown key catalog.ingress_clas" in capsys.readouterr().err
