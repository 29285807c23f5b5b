"""Character vocabulary for CTC speech recognition: id 0 is the CTC blank, then the transcripts' characters."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

BLANK_TOKEN = "<blank>"
IGNORE_INDEX = -100


@dataclass(frozen=True)
class CharVocabulary:
    """Maps characters to ids 1..N (0 is the CTC blank); `len(vocabulary)` is the CTC head's output size."""

    chars: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(set(self.chars)) != len(self.chars) or any(len(char) != 1 for char in self.chars):
            raise ValueError(f"Vocabulary characters must be distinct single characters, got {self.chars}.")

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> CharVocabulary:
        """Every character that occurs in `texts`, sorted."""
        chars = sorted({char for text in texts for char in text})
        if not chars:
            raise ValueError("Cannot build a vocabulary from empty transcripts; pass non-empty texts.")
        return cls(tuple(chars))

    @property
    def blank_id(self) -> int:
        return 0

    def __len__(self) -> int:
        return len(self.chars) + 1

    @cached_property
    def _ids(self) -> dict[str, int]:
        return {char: index for index, char in enumerate(self.chars, start=1)}

    def encode(self, text: str) -> list[int]:
        """Character ids of `text`; ValueError for a character outside the vocabulary."""
        lookup = self._ids
        unknown = sorted(set(text) - lookup.keys())
        if unknown:
            raise ValueError(
                f"Characters {unknown} of {text!r} are not in the vocabulary {''.join(self.chars)!r}; build it "
                "from all transcripts (train and validation) or normalise the text."
            )
        return [lookup[char] for char in text]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of `ids`, skipping blanks and -100 padding (no CTC collapsing: see `decode_ctc`)."""
        return "".join(self.chars[i - 1] for i in map(int, ids) if 0 < i <= len(self.chars))

    def decode_ctc(self, ids: Sequence[int]) -> str:
        """Greedy CTC decoding of per-frame ids: merge repeats, then drop blanks."""
        ids = [int(i) for i in ids]
        return self.decode([i for position, i in enumerate(ids) if position == 0 or i != ids[position - 1]])

    def save(self, path: str | Path) -> None:
        """Write the vocabulary as JSON."""
        Path(path).write_text(
            json.dumps({"blank": BLANK_TOKEN, "chars": list(self.chars)}, ensure_ascii=False)
        )

    @classmethod
    def load(cls, path: str | Path) -> CharVocabulary:
        """Read a vocabulary written by `save`."""
        data = json.loads(Path(path).read_text())
        if "chars" not in data:
            raise ValueError(f"{path} is not a CharVocabulary file (no 'chars' key).")
        return cls(tuple(data["chars"]))
