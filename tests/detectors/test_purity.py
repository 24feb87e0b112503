"""The core stays pure: importing it loads no streaming, metrics or HTTP library."""

import subprocess
import sys


def test_detectors_imports_no_io_libraries() -> None:
    code = (
        "import sys, detectors, detectors.pipeline\n"
        "bad = sorted(m for m in ('faust', 'aiokafka', 'prometheus_client', 'httpx', "
        "'requests', 'sqlite3', 'streams') if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == ""


def test_simulator_imports_no_io_libraries() -> None:
    code = ("import sys, simulator\n"
            "print(','.join(m for m in ('faust', 'aiokafka', 'prometheus_client', 'streams')"
            " if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == ""
