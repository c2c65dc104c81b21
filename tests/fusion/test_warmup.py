"""`fusion.warmup`: imports on a background thread, failures left to the stage that needs them."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from fusion import warmup


def test_imports_run_on_another_thread_and_failures_are_left_alone() -> None:
    seen: list[str] = []

    def record() -> None:
        import threading

        seen.append(threading.current_thread().name)

    def broken() -> None:
        raise RuntimeError("left for the stage that needs it")

    thread = warmup.start(["fusion_no_such_module", broken, "json", record])
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert seen == ["fusion-warmup"]  # ran after the two failures, on its own thread
    assert "json" in sys.modules


def test_run_modules_exist_and_load_nothing_of_arviz_plots() -> None:
    """Every name in `RUN` imports; together they leave ArviZ's plotting stack alone."""
    script = textwrap.dedent(
        """
        import sys
        from fusion import warmup
        for module in warmup.RUN:
            module() if callable(module) else __import__(module)
        assert "arviz_plots" not in sys.modules and "matplotlib.pyplot" not in sys.modules
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
