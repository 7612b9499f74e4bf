"""Progress display: a tqdm bar on a terminal, a line every 30 s and at the end elsewhere (fake clock, no sleeping)."""

import io

from tqdm import tqdm

from scalerl.progress import LineProgress, progress_bar


class FakeClock:
    """A clock that moves only when told."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_stream_that_is_not_a_terminal_gets_a_line_every_interval_and_one_at_the_end():
    clock, stream = FakeClock(), io.StringIO()
    bar = progress_bar(100, desc="train", unit="upd", stream=stream, clock=clock, interval_s=30)
    assert isinstance(bar, LineProgress)
    for _ in range(50):  # 50 updates, 2 s apart: 100 s in all
        clock.now += 2
        bar.update(1)
    assert stream.getvalue().splitlines() == [
        "train: 15/100 upd (15%), 0.5 upd/s, ETA 02:50",
        "train: 30/100 upd (30%), 0.5 upd/s, ETA 02:20",
        "train: 45/100 upd (45%), 0.5 upd/s, ETA 01:50",
    ]
    bar.set_postfix(eval_return="12.5")  # shown with the next line, not printed by itself
    clock.now += 10
    bar.update(50)
    bar.close()
    bar.close()  # closing twice prints once
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4
    assert lines[-1] == "train: 100/100 upd (100%), in 01:50, 0.909 upd/s, eval_return=12.5"


def test_resumed_counts_rate_only_this_sessions_items_and_units_scale():
    clock, stream = FakeClock(), io.StringIO()
    with progress_bar(
        110_000, desc="generate", unit=" transitions", initial=10_000, unit_scale=True, stream=stream, clock=clock
    ) as bar:
        clock.now += 40
        bar.update(40_000)
    first, last = stream.getvalue().splitlines()
    assert first == "generate: 50.0k/110k transitions (45%), 1.00k transitions/s, ETA 01:00"
    assert last == "generate: 50.0k/110k transitions (45%), in 00:40, 1.00k transitions/s"


def test_a_terminal_gets_a_tqdm_bar_and_disabled_prints_nothing():
    terminal = Terminal()
    bar = progress_bar(10, desc="train", unit="upd", stream=terminal)
    assert isinstance(bar, tqdm) and not bar.disable
    bar.update(10)
    bar.close()
    assert "10/10" in terminal.getvalue()
    quiet = io.StringIO()
    bar = progress_bar(10, desc="train", unit="upd", stream=quiet, enabled=False)
    bar.update(10)
    bar.set_postfix_str("x")
    bar.close()
    assert quiet.getvalue() == ""
