"""How a table's feature cells are read: missing tokens, categorical columns, their codes.

:class:`CellRules` are a data set's read options (its catalogue entry's ``categorical``
and ``missing_values``, and the vocabularies a model share already knows);
:class:`Coder` turns one categorical column's texts into codes, chunk by chunk, so that a
file larger than memory gets one vocabulary: the sorted distinct texts of the column, or,
with a known vocabulary, its texts with their codes and the new ones appended, sorted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lianmo.config.party import DEFAULT_MISSING_VALUES

__all__ = ["MAX_CATEGORIES", "CellRules", "Coder"]

#: Most distinct values a categorical column may hold. Each category is a bin of
#: SecureBoost's histograms (32 bins for a number by default), so a host's encrypted
#: histograms and the guest's split search grow with it, and a one-hot LR column per
#: category; a credit table's real categories (statuses, regions, products, industry
#: codes) number in the tens or hundreds, while a column with thousands of distinct
#: texts is nearly always an id, a date or free text in disguise, which no model should
#: split on. 1000 leaves room for the largest code lists (e.g. 4-digit industry codes).
MAX_CATEGORIES = 1000


@dataclass(frozen=True, slots=True)
class CellRules:
    """How feature cells are read (ids and labels are never missing nor categories).

    Attributes
    ----------
    categorical : tuple of str
        Feature columns read as categories (their cell texts, stripped).
    missing_values : tuple of str
        Cell texts (after stripping) read as missing in feature columns; empty: a missing
        cell is an error.
    categories : mapping of str to tuple of str
        Known vocabularies (a model share's, for scoring): their texts keep their codes,
        new texts are appended after them, sorted. Their columns are categorical too.
    """

    categorical: tuple[str, ...] = ()
    missing_values: tuple[str, ...] = DEFAULT_MISSING_VALUES
    categories: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        categorical: Sequence[str] = (),
        missing_values: Sequence[str] = DEFAULT_MISSING_VALUES,
        categories: Mapping[str, Sequence[str]] | None = None,
    ) -> CellRules:
        """Build rules from any sequences (a catalogue entry's lists, a model's mapping)."""
        known = {name: tuple(texts) for name, texts in (categories or {}).items()}
        return cls(tuple(categorical), tuple(missing_values), known)

    def is_categorical(self, column: str) -> bool:
        """Whether feature ``column`` is read as categories."""
        return column in self.categorical or column in self.categories


class Coder:
    """Codes one categorical column's texts, chunk by chunk, into one vocabulary.

    A chunk is coded with :meth:`code`, and its new texts are kept only on :meth:`commit`
    (after every check of the chunk passed), so a chunk read again codes the same way.
    Codes handed out during the pass are provisional (first seen, first numbered);
    :meth:`categories` and :meth:`final_codes` give the final order. A ``fixed`` coder
    (a later pass over a scanned file) refuses any text it was not given.
    """

    def __init__(self, column: str, known: Sequence[str] = (), *, fixed: bool = False) -> None:
        self.column = column
        self.fixed = fixed
        self._known = len(known)
        self._index: dict[str, int] = {text: code for code, text in enumerate(known)}
        self._pending: list[str] = []

    def code(self, texts: pa.Array) -> tuple[np.ndarray, int | None]:
        """Provisional float codes of ``texts`` (nulls: NaN), and where a text is refused.

        Returns the codes and None, or, if a text would take the column past
        :data:`MAX_CATEGORIES` (or is new to a fixed coder), the 0-based position of its
        first occurrence.
        """
        encoded = pc.dictionary_encode(texts)
        words = encoded.dictionary.to_pylist()
        indices = encoded.indices.to_numpy(zero_copy_only=False)
        lookup = np.empty(len(words) + 1, dtype=np.float64)
        lookup[-1] = np.nan
        self._pending = []
        refused = None
        for k, word in enumerate(words):
            code = self._index.get(word)
            if code is None:
                code = len(self._index) + len(self._pending)
                if refused is None and (self.fixed or code >= MAX_CATEGORIES):
                    refused = k
                self._pending.append(word)
            lookup[k] = code
        codes = lookup[np.nan_to_num(indices, nan=len(words)).astype(np.intp)]
        if refused is None:
            return codes, None
        return codes, int(np.flatnonzero(indices == refused)[0])

    def commit(self) -> None:
        """Keep the texts the last :meth:`code` met for the first time."""
        for word in self._pending:
            self._index[word] = len(self._index)
        self._pending = []

    def categories(self) -> tuple[str, ...]:
        """The vocabulary in final code order: known texts, then new ones sorted."""
        words = list(self._index)
        return (*words[: self._known], *sorted(words[self._known :]))

    def final_codes(self) -> np.ndarray:
        """Each provisional code's final code (a permutation)."""
        final = {text: code for code, text in enumerate(self.categories())}
        return np.array([final[text] for text in self._index], dtype=np.float64)
