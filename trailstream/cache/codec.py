"""How a raw record is kept small and lossless: zstd with a dictionary that lives in the cache itself.

The large JSON fields (requestParameters, responseElements, ...) are already stored as text columns, so the
compressed blob holds the rest of the record with PLACEHOLDER in their place (see rows.restore_record).
Codec 0 is zstd without a dictionary; codec N >= 1 uses dictionary N from the `codecs` table.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import zstandard

PLACEHOLDER = "\u0000trailstream:column"
NO_DICTIONARY = 0
DICTIONARY_SIZE = 32 * 1024
_LEVEL = 3


@dataclass
class RecordCompressor:
    """Compresses record blobs with one codec; picklable so worker processes can rebuild it."""

    codec_id: int
    dictionary: bytes | None

    def __post_init__(self):
        dict_data = zstandard.ZstdCompressionDict(self.dictionary) if self.dictionary else None
        self._compressor = zstandard.ZstdCompressor(
            level=_LEVEL, dict_data=dict_data, write_checksum=False, write_dict_id=False
        )

    def compress(self, data: bytes) -> bytes:
        return self._compressor.compress(data)

    def __getstate__(self):
        return {"codec_id": self.codec_id, "dictionary": self.dictionary}

    def __setstate__(self, state):
        self.codec_id, self.dictionary = state["codec_id"], state["dictionary"]
        self.__post_init__()


def default_compressor() -> RecordCompressor:
    return RecordCompressor(NO_DICTIONARY, None)


@lru_cache(maxsize=16)
def _decompressor(dictionary: bytes | None) -> zstandard.ZstdDecompressor:
    dict_data = zstandard.ZstdCompressionDict(dictionary) if dictionary else None
    return zstandard.ZstdDecompressor(dict_data=dict_data)


def decompress(blob: bytes, dictionary: bytes | None) -> bytes:
    """Inverse of RecordCompressor.compress for the codec whose dictionary is given (None for codec 0)."""
    return _decompressor(dictionary).decompress(blob)


def train_dictionary(samples: list[bytes]) -> bytes:
    """A zstd dictionary from sample record blobs; deterministic for the same samples."""
    return zstandard.train_dictionary(DICTIONARY_SIZE, samples, level=_LEVEL).as_bytes()
