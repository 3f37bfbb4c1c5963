"""Progress of `vdb ingest` on stderr: a bar on a terminal, a plain line every few seconds
for logs and pipes, or nothing. The work is counted in chunks embedded out of the chunks
the run is expected to embed (see IngestReport.expected_embeds), so the ETA follows the
embedding, which is where the time goes, and not the number of files."""

import sys
import threading
import time

MODES = ("auto", "bar", "plain", "none")
PLAIN_EVERY = 5.0  # seconds between two plain progress lines


def choose(mode: str, as_json: bool, stream=None) -> str:
    """The mode to use: auto is a bar when the stream (stderr) is a terminal, else plain
    lines, except with --json (then none: the command's output is for a program)."""
    stream = stream or sys.stderr
    if mode != "auto":
        return mode
    if stream.isatty():
        return "bar"
    return "none" if as_json else "plain"


def make(mode: str, stream=None):
    """A progress reporter for the mode (one of MODES but auto): called as
    reporter(report, files_done, files_total) while ingest runs, then reporter.close()."""
    stream = stream or sys.stderr
    if mode == "bar":
        return Bar(stream)
    if mode == "plain":
        return Plain(stream)
    return Silent()


class Silent:
    """No progress."""

    def __call__(self, report, done, total) -> None:
        pass

    def close(self, report=None) -> None:
        pass


class Plain:
    """One line at the first report, then one every PLAIN_EVERY seconds from a timer thread
    (so a log hears from a run even while a batch embeds), and one at the end:
    `ingest: 45% 1,520 of ~3,400 chunks embedded, 45 of 114 files read, 24.5 chunks/s,
    ETA 1m17s` (~ while the total is an estimate from the files not read yet). The rate is
    measured from the first report (after the model is loaded) to the last batch written,
    and the ETA counts down from that batch."""

    def __init__(self, stream, every: float = PLAIN_EVERY):
        self.stream = stream
        self.every = every
        self.created = time.monotonic()
        self.started: float | None = None  # the first report
        self.base = 0  # chunks embedded at the first report
        self.mark = (0.0, 0)  # (time, chunks embedded) when the count last moved
        self.report = None
        self.stop = threading.Event()
        self.timer: threading.Thread | None = None
        self.writing = threading.Lock()

    def __call__(self, report, done, total) -> None:
        now = time.monotonic()
        if self.started is not None:
            if report.embedded != self.mark[1]:
                self.mark = (now, report.embedded)
            return
        self.started, self.base, self.report = now, report.embedded, report
        self.mark = (now, report.embedded)
        self._write(line(report, 0.0))
        self.timer = threading.Thread(target=self._tick, name="vdb-progress", daemon=True)
        self.timer.start()

    def _tick(self) -> None:
        while not self.stop.wait(self.every):
            waited = time.monotonic() - self.mark[0]
            self._write(line(self.report, self._rate(), waited=waited))

    def close(self, report=None) -> None:
        """Stop the timer; the closing line for a finished run's report (none when the run
        failed)."""
        self.stop.set()
        if self.timer is not None:
            self.timer.join()
        if report is not None:
            self.report = self.report or report
            now = time.monotonic()
            self.mark = (now, report.embedded)
            self._write(line(report, self._rate(), took=now - self.created))

    def _rate(self) -> float:
        """Chunks embedded per second from the first report to the last count."""
        at, embedded = self.mark
        spent = at - (self.started or at)
        return (embedded - self.base) / spent if spent > 0 else 0.0

    def _write(self, text: str) -> None:
        with self.writing:
            self.stream.write(text + "\n")
            self.stream.flush()


def line(report, rate: float, took: float | None = None, waited: float = 0.0) -> str:
    """One plain progress line for the report at `rate` chunks per second, measured
    `waited` seconds ago; with `took` (the whole run's seconds), the closing line."""
    final = took is not None
    done = report.embedded
    exact = final or report.planned_files >= report.files
    expected = done if final else max(report.expected_embeds, done)
    share = done / expected if expected else float(exact)
    total = f"{expected:,}" if exact else f"~{expected:,}" if expected else "?"
    files = report.files if final else report.planned_files
    parts = [
        f"ingest: {share:4.0%} {done:,} of {total} chunks embedded",
        f"{files:,} of {report.files:,} files read",
    ]
    if rate:
        parts.append(f"{rate:.1f} chunks/s")
    if final:
        parts.append(f"done in {duration(took)}")
    elif rate and expected > done:
        parts.append(f"ETA {duration(max(0.0, (expected - done) / rate - waited))}")
    return ", ".join(parts)


def duration(seconds: float) -> str:
    """Seconds as 42s, 3m05s or 2h07m."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Bar:
    """A tqdm bar in chunks, with the files planned and the rate beside it."""

    def __init__(self, stream):
        from tqdm import tqdm

        self.bar = tqdm(total=0, unit=" chunks", file=stream, dynamic_ncols=True)

    def __call__(self, report, done, total) -> None:
        self.bar.total = max(report.expected_embeds, report.embedded)
        self.bar.n = report.embedded
        self.bar.set_postfix_str(f"{report.planned_files}/{report.files} files read", refresh=False)
        self.bar.refresh()

    def close(self, report=None) -> None:
        if report is not None:
            self.bar.total = self.bar.n = report.embedded
            self.bar.set_postfix_str(f"{report.files}/{report.files} files read", refresh=False)
        self.bar.close()
