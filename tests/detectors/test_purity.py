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


def test_the_event_path_loads_no_model_library() -> None:
    """``import detectors`` (the core, its decoder, JobInputs) leaves River, scipy and numpy
    to the deep audit that needs them: the event path starts fast."""
    code = (
        "import sys, detectors, detectors.pipeline, detectors.job_inputs\n"
        "print(','.join(m for m in ('river', 'scipy', 'numpy', 'sklearn') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == ""
