"""Progress of `vdb ingest` on stderr: a bar on a terminal, a plain line every few seconds
for logs and pipes, or nothing. The work is counted in chunks embedded out of the chunks
the run is expected to embed (see IngestReport.expected_embeds), so the ETA follows the
embedding, which is where the time goes, and not the number of files."""

import sys
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
    """One line at the first report, one every PLAIN_EVERY seconds, and one at the end:
    `ingest: 45% 1,520 of ~3,400 chunks embedded, 45 of 114 files read, 24.5 chunks/s,
    ETA 1m17s` (~ while the total is an estimate from the files not read yet). The rate is
    measured from the first report, after the model is loaded."""

    def __init__(self, stream, every: float = PLAIN_EVERY):
        self.stream = stream
        self.every = every
        self.created = time.monotonic()
        self.started: float | None = None  # the first report
        self.base = 0  # chunks embedded at the first report
        self.last = 0.0

    def __call__(self, report, done, total) -> None:
        now = time.monotonic()
        if self.started is None:
            self.started, self.base = now, report.embedded
            self._write(line(report, 0.0))
        elif now - self.last >= self.every:
            self._write(line(report, self._rate(report, now)))
        else:
            return
        self.last = now

    def close(self, report=None) -> None:
        """The closing line for a finished run's report (none when the run failed)."""
        if report is not None:
            now = time.monotonic()
            self._write(line(report, self._rate(report, now), took=now - self.created))

    def _rate(self, report, now: float) -> float:
        """Chunks embedded per second since the first report."""
        spent = now - (self.started or now)
        return (report.embedded - self.base) / spent if spent > 0 else 0.0

    def _write(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


def line(report, rate: float, took: float | None = None) -> str:
    """One plain progress line for the report at `rate` chunks per second; with `took` (the
    whole run's seconds), the closing line."""
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
        parts.append(f"ETA {duration((expected - done) / rate)}")
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
