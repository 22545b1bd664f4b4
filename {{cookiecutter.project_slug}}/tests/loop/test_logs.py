import io
import sys

from {{ cookiecutter.package_name }}.loop.logs import RunLog


class Terminal(io.StringIO):
    """stderr as a terminal: tqdm draws its bar only there."""

    def isatty(self):
        return True


def test_the_progress_bar_shows_the_logged_steps_per_second_not_a_rate_of_its_own(
    tmp_path, monkeypatch
):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    run_log = RunLog(str(tmp_path), total_steps=3000, start_step=0)
    for step in range(32, 3001, 32):  # chunks of 32 steps
        run_log.advance(32)
        if step % 320 == 0:
            run_log.write(step, {"loss": 0.5, "steps_per_sec": 466.25})
    run_log.close()
    last = terminal.getvalue().split("\r")[-1]
    assert "steps/s=466" in last, last
    assert "step/s" not in last.replace("steps/s=", "") and "it/s" not in last, last
