"""Batches on the training device: on a GPU, uint8 leaves the store and becomes float there.

On CUDA, DeviceLoader wraps a ClipLoader:
- a background thread gathers the next batches from the store as uint8 straight into pinned
  (page-locked) host memory, so the gather overlaps the GPU's work on the current batch;
- each batch is copied to the GPU without blocking, on a side stream, as uint8: a quarter of
  the bytes of float32 cross the bus;
- it becomes float (data.loaders.to_float) on the GPU, on that same side stream, issued
  before the current batch is handed out, so the next one is ready when the step ends.
The training stream waits for the side stream on the GPU (wait_stream), never on the host.

On the CPU, on_device returns the loader unchanged: the CPU path is the plain ClipLoader,
with its speed and its bit-exact results.

TimedLoader adds up how long a consumer waited for its next batch (the loop reports it as
data_s, the benchmarks as the time inside the loader). From a DeviceLoader that is only the
wait for the gathering thread: queueing the upload can block too, when the GPU's launch
queue is full, but that is the GPU being busy, not the data being late.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch

from vidtune.data.loaders import ClipLoader, MultiClipLoader, to_float

Batch = tuple[torch.Tensor, torch.Tensor]   # clips, labels
_END = object()   # the producer's last item


class _Prefetcher:
    """A thread that runs a batch iterator up to `depth` batches ahead of its consumer."""

    def __init__(self, batches: Iterator[Batch], depth: int) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(batches,), daemon=True,
                                        name="vidtune-prefetch")
        self._thread.start()

    def _run(self, batches: Iterator[Batch]) -> None:
        try:
            for batch in batches:
                if not self._put(batch):
                    return
            self._put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._put(exc)

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[Batch]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        """Stop the thread (the consumer broke off early, e.g. on a diverged loss) and wait."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.1)
            except queue.Empty:
                pass
        self._thread.join()


class DeviceLoader:
    """A ClipLoader's batches as float clips (B, T, 3, H, W) and labels (B,) on a CUDA device.

    Same batches, same order as the ClipLoader (set_epoch passes through); depth is how many
    batches the gathering thread may hold ready in pinned memory.
    """

    def __init__(self, loader: ClipLoader, device: torch.device, depth: int = 2) -> None:
        if device.type != "cuda" or device.index is None:
            raise ValueError(f"device is {device}, but DeviceLoader needs a CUDA device with an "
                             "index (cuda:0); on the CPU use the ClipLoader itself (on_device)")
        if depth < 1:
            raise ValueError(f"depth is {depth}, but must be >= 1")
        self.loader, self.device, self.depth = loader, device, depth
        self._stream: torch.cuda.Stream | None = None
        self.data_wait_s = 0.0   # waited for the gathering thread, over every pass so far

    def side_stream(self) -> torch.cuda.Stream:
        """The side stream of the uploads, made once for the loader's life: a new stream
        every epoch would leave each one's cached blocks in the allocator, reserved memory
        creeping up epoch by epoch."""
        if self._stream is None:
            self._stream = torch.cuda.Stream(self.device)
        return self._stream

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def indices(self) -> np.ndarray:
        return self.loader.indices

    def _upload(self, batch: Batch | None, stream: torch.cuda.Stream) -> Batch | None:
        """Queue the copy and the conversion of a pinned uint8 batch on the side stream."""
        if batch is None:
            return None
        clips_u8, labels = batch
        with torch.cuda.stream(stream):
            clips = to_float(clips_u8.to(self.device, non_blocking=True))   # (B, T, 3, H, W)
            labels = labels.to(self.device, non_blocking=True)               # (B,)
        return clips, labels

    def __iter__(self) -> Iterator[Batch]:
        stream = self.side_stream()
        current = torch.cuda.current_stream(self.device)
        batches = _Prefetcher(self.loader.uint8_batches(pin_memory=True), self.depth)
        pending = iter(batches)

        def gathered() -> Batch | None:   # the next pinned batch, its wait counted as data time
            t0 = time.perf_counter()
            batch = next(pending, None)
            self.data_wait_s += time.perf_counter() - t0
            return batch

        try:
            ready = self._upload(gathered(), stream)
            while ready is not None:
                current.wait_stream(stream)   # on the GPU: the step starts once its batch is there
                for tensor in ready:
                    # Made on the side stream, used on this one: the allocator must not hand
                    # their memory back to the side stream before this stream is done with them.
                    tensor.record_stream(current)
                batch, ready = ready, self._upload(gathered(), stream)
                yield batch
        finally:
            batches.close()


def on_device(loader: Iterable[Batch], device: torch.device) -> Iterable[Batch]:
    """The batches to train on `device`: a ClipLoader wrapped in a DeviceLoader on CUDA; on
    the CPU, and for any other iterable, the loader itself (the loop moves its tensors). A
    MultiClipLoader's k windows a clip (evaluation only) take that plain route too."""
    if device.type == "cuda" and isinstance(loader, ClipLoader) and not isinstance(loader, MultiClipLoader):
        return DeviceLoader(loader, device)
    return loader


class TimedLoader:
    """Wraps a batch iterable and adds up the time spent waiting for its next batch.

    A loader that counts its own data wait (`data_wait_s`, a DeviceLoader) is trusted for it:
    the time inside its next() also holds the upload's launch, GPU back-pressure.
    """

    def __init__(self, loader: Iterable[Any]) -> None:
        self.loader, self.seconds = loader, 0.0

    def __iter__(self) -> Iterator[Any]:
        if hasattr(self.loader, "data_wait_s"):
            start = float(self.loader.data_wait_s)
            try:
                yield from self.loader
            finally:
                self.seconds += float(self.loader.data_wait_s) - start
            return
        it = iter(self.loader)
        while True:
            t0 = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                self.seconds += time.perf_counter() - t0
                return
            self.seconds += time.perf_counter() - t0
            yield batch
