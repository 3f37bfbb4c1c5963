"""Continuous batching: the forward passes of concurrent generations of one model, run together.

Each generation runs in its own thread and asks the model's Batcher for its passes. A caller
that finds no pass running waits until every generation taking part has asked (or GATHER
seconds have gone by), then takes what is queued as one step: the decode requests (one token
each) together through LlamaModel.forward_batch, which reads the weights once for all of
them, and a prompt chunk beside them, the earliest generation's, at most BUDGET of its
tokens (a longer one goes on in the next steps), so that prompts run in the order their
generations came and a long one never stalls the streams that are decoding. Callers that
ask meanwhile queue for the next step; generations join and leave between steps. Each
generation's logits are exactly those it gets alone: forward_batch's rows equal single steps,
and an integer model's logits do not depend on how a prompt is cut.

Every step of every model runs on one thread of the process (_Stepper), whose OpenMP team
is then the only one at work while generations run (llm.omp); a generation gives back its
own thread's team when it starts, and the stepping thread its team once none runs.
"""

import os
import threading
import time
from concurrent import futures
from contextlib import contextmanager

from llm import omp

GATHER = 0.005  # seconds a step waits for the generations taking part to ask
BUDGET = 256  # prompt tokens a step runs at most, beside the decoding streams' tokens
POLL = 0.05  # seconds between checks for cancellation while queued


class StepCancelled(Exception):
    """The caller stopped waiting for its pass (stopped() became true while it was queued)."""


class _Request:
    __slots__ = ("tokens", "cache", "since", "arrived", "done", "logits", "error")

    def __init__(self, tokens, cache, arrived=None):
        self.tokens, self.cache = tokens, cache
        self.since = time.monotonic()
        self.arrived = self.since if arrived is None else arrived  # its generation's start
        self.done, self.logits, self.error = False, None, None

    @property
    def decode(self) -> bool:
        return len(self.tokens) == 1

    def result(self):
        if self.error is not None:
            raise self.error
        return self.logits


def _arrival(r: _Request) -> float:
    return r.arrived


class _Stepper:
    """The thread that runs every Batcher's steps (started on first use, and again in a
    forked child), and the count of generations running in the process."""

    def __init__(self):
        self._after_fork()
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._executor: futures.ThreadPoolExecutor | None = None
        self._active = 0

    def _submit(self, fn, *args) -> futures.Future | None:
        with self._lock:
            if self._executor is None:
                self._executor = futures.ThreadPoolExecutor(1, thread_name_prefix="llm-step")
            try:
                return self._executor.submit(fn, *args)
            except RuntimeError:  # the interpreter is exiting
                return None

    def run(self, fn, *args) -> None:
        """fn(*args) on the stepping thread, returning once it has ended (also when the
        caller is interrupted meanwhile, which is then raised)."""
        future = self._submit(fn, *args)
        if future is None:
            fn(*args)
            return
        try:
            future.result()
        except BaseException:
            futures.wait([future])
            raise

    def join(self) -> None:
        omp.release()  # the caller only waits for its passes from now on
        with self._lock:
            self._active += 1

    def leave(self) -> None:
        with self._lock:
            self._active -= 1
            idle = self._active == 0 and self._executor is not None
        if idle:
            self._submit(self._release_if_idle)

    def _release_if_idle(self) -> None:
        if not self._active:
            omp.release()


_STEPPER = _Stepper()


class Batcher:
    """The passes of one model's generations (see the module). Thread-safe."""

    def __init__(self, net, budget: int | None = None):
        self.net = net
        # prompt tokens per step: a longer prompt chunk runs over several steps (integer
        # models only, whose logits do not depend on how a prompt is cut)
        self.budget = budget if budget is not None else (BUDGET if net.integer else 0)
        self._cond = threading.Condition()
        self._queue: list[_Request] = []
        self._running = False
        self._free_since = 0.0  # when the last step ended
        self._members = 0  # generations between join() and leave()
        self.steps = 0  # passes run
        self.decoded = 0  # tokens decoded in them
        self.widest = 0  # most decode requests in one step

    def join(self) -> None:
        _STEPPER.join()
        with self._cond:
            self._members += 1

    def leave(self) -> None:
        with self._cond:
            self._members -= 1
            self._cond.notify_all()
        _STEPPER.leave()

    @property
    def waiting(self) -> int:
        """Requests queued for the next step."""
        return len(self._queue)

    @property
    def members(self) -> int:
        return self._members

    @contextmanager
    def hold(self):
        """No step runs while held (requests queue meanwhile)."""
        with self._cond:
            while self._running:
                self._cond.wait(POLL)
            self._running = True
        try:
            yield
        finally:
            with self._cond:
                self._running = False
                self._cond.notify_all()

    def forward(self, tokens, cache, stopped=None, arrived=None):
        """The logits net.forward(tokens, cache) gives (of the last token), run in a step
        with the other generations' requests. StepCancelled once stopped() while queued.
        arrived: when the caller's generation started (time.monotonic()), which orders
        prompt chunks (default: now), so that a prompt sent in several chunks keeps its
        place."""
        req = _Request([int(t) for t in tokens], cache, arrived)
        with self._cond:
            self._queue.append(req)
            self._cond.notify_all()
        while True:
            with self._cond:
                while True:
                    if req.done:
                        return req.result()
                    if not self._running:
                        gathered = len(self._queue) >= self._members
                        waited = time.monotonic() - max(self._queue[0].since, self._free_since)
                        if gathered or waited >= GATHER:
                            batch = self._take()
                            self._running = True
                            break
                    if stopped is not None and req in self._queue and stopped():
                        self._queue.remove(req)
                        self._cond.notify_all()
                        raise StepCancelled
                    self._cond.wait(POLL if self._running else GATHER)
            try:
                _STEPPER.run(self._run, *batch)
            finally:
                with self._cond:
                    self._running = False
                    self._free_since = time.monotonic()  # the others' gathering starts now
                    self._cond.notify_all()

    def _take(self):
        """(decode requests, the earliest generation's prompt chunk or None), out of the
        queue. Under the lock."""
        decodes = [r for r in self._queue if r.decode]
        prefill = min((r for r in self._queue if not r.decode), key=_arrival, default=None)
        whole = prefill is not None and not (self.budget and len(prefill.tokens) > self.budget)
        self._queue = [r for r in self._queue if not r.decode and not (whole and r is prefill)]
        return decodes, prefill

    def _run(self, decodes: list, prefill) -> None:
        try:
            self._step(decodes, prefill)
        except BaseException as exc:  # an interrupt: no caller of the step waits for ever
            failed = [r for r in [*decodes, prefill] if r is not None and not r.done]
            for r in failed:
                r.error, r.done = RuntimeError(f"the step was interrupted ({exc!r})"), True
            with self._cond:  # a prompt cut by the budget stays queued until its last part
                self._queue = [r for r in self._queue if r not in failed]
            raise

    def _step(self, decodes: list, prefill) -> None:
        net = self.net
        ready = []
        for r in decodes:
            if r.cache.length + 1 > r.cache.n_ctx:  # its own error, not the step's
                self._settle(r, lambda r=r: net.forward(r.tokens, r.cache))
            else:
                ready.append(r)
        if ready:
            try:
                logits = net.forward_batch([r.tokens[0] for r in ready], [r.cache for r in ready])
            except Exception as exc:  # noqa: BLE001 - handed to every caller of the step
                for r in ready:
                    r.error, r.done = exc, True
            else:
                for r, row in zip(ready, logits, strict=True):
                    r.logits, r.done = row, True
        if prefill is not None and self.budget and len(prefill.tokens) > self.budget:
            part, rest = prefill.tokens[: self.budget], prefill.tokens[self.budget :]
            try:  # the first part now; the request stays queued with the rest
                net.forward(part, prefill.cache)
                prefill.tokens = rest
            except Exception as exc:  # noqa: BLE001 - raised in the caller's thread
                with self._cond:
                    if prefill in self._queue:
                        self._queue.remove(prefill)
                prefill.error, prefill.done = exc, True
        elif prefill is not None:
            self._settle(prefill, lambda: net.forward(prefill.tokens, prefill.cache))
        self.steps += 1
        self.decoded += len(ready)
        self.widest = max(self.widest, len(ready))

    @staticmethod
    def _settle(r: _Request, run) -> None:
        try:
            r.logits = run()
        except Exception as exc:  # noqa: BLE001 - raised in the caller's thread
            r.error = exc
        r.done = True
