"""DecodeReport: how many videos a cache build decoded, and which it skipped and why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vidtune.data.decode import shown


@dataclass(frozen=True)
class DecodeReport:
    """What decoding a folder or manifest gave: how many clips, which were skipped and why."""

    decoded: int
    skipped: tuple[tuple[str, str], ...] = ()  # (the clip as its source names it, reason)
    num_classes: int | None = None

    def summary(self) -> str:
        in_classes = f" in {self.num_classes} classes" if self.num_classes is not None else ""
        head = f"decoded {self.decoded} videos{in_classes}"
        if not self.skipped:
            return head
        noun = "file" if len(self.skipped) == 1 else "files"
        lines = [f"{head}; skipped {len(self.skipped)} unreadable {noun}:"]
        lines += [f"  {shown(path)}: {reason}" for path, reason in self.skipped]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "decoded": self.decoded,
            "skipped": [list(item) for item in self.skipped],
            "num_classes": self.num_classes,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DecodeReport:
        return cls(
            decoded=int(data["decoded"]),
            skipped=tuple((str(p), str(r)) for p, r in data.get("skipped", [])),
            num_classes=data.get("num_classes"),
        )
