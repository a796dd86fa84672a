"""The whole lianmo exception tree, with the CLI exit code of each branch.

::

    LianmoError                     exit 1   anything lianmo raises on purpose
    ├── ConfigError                 exit 2   party config or job spec is invalid
    │   ├── PolicyError                      a job falls outside a party's [policy]
    │   ├── VersionMismatchError             a scoring request or a host names another
    │   │                                    model version than the one promoted
    │   └── IdBudgetError                    a guest asked a host about more distinct ids
    │                                        than its [serving] id_budget allows per window
    ├── DataError                   exit 3   a party's table is unusable (file, column, row named)
    ├── CryptoError                 exit 4   bad key, key too small, ciphertext not in Z*_{n^2},
    │                                        values under different keys, overflow
    ├── ProtocolError               exit 5   a peer sent something the protocol does not allow
    │   ├── UnknownJobError                  message for a job this node does not run
    │   └── UnexpectedMessageError           wrong sender, tag, round or sequence number
    ├── TransportError              exit 6   the network failed (peer down after retries,
    │   │                                    deadline exceeded, payload corrupted)
    │   └── AuthenticationError     exit 7   TLS identity missing, untrusted or not the
    │                                        party the job expects
    ├── JobFailedError              exit 8   a job stopped; carries the failing party and its
    │   │                                    error (public form: no ids, values or paths)
    │   └── JobCancelledError                cancelled by a coordinator
    └── AuditError                  exit 9   an audit log failed verification, or its replay
                                             diverged from what was logged

Every message names the party, the file or message concerned, what was expected and
what to do about it: the reader is an operator at another institution who cannot
look at our logs.

What leaves a party (the job status a coordinator reads, the audit log) is the error's
:meth:`LianmoError.public_text`: party, data set name, column and row, never local
paths, ids or cell values. The full message stays in the party's own node log.
"""

from __future__ import annotations

import typing as t


class LianmoError(Exception):
    """Base class of every error lianmo raises on purpose.

    Parameters
    ----------
    *args
        The full message, as for any exception: it may name local files, ids and values.
    public : str, optional
        The message as told outside the party, without local paths, ids or cell values;
        None when the full message has none to hide.
    """

    exit_code: t.ClassVar[int] = 1

    def __init__(self, *args: object, public: str | None = None) -> None:
        super().__init__(*args)
        self.public = public

    def public_text(self, dataset: str | None = None) -> str | None:
        """The message for readers outside the party, or None if none was given.

        ``dataset`` is the catalogue name of the data set the job uses, which a
        :class:`DataError` names in place of its file.
        """
        return self.public


class ConfigError(LianmoError):
    """A party config or job spec is missing, malformed or inconsistent."""

    exit_code: t.ClassVar[int] = 2


class PolicyError(ConfigError):
    """A job asks for something a party's ``[policy]`` does not accept (a peer, a setting
    below its floor, a scoring guest), or its parties do not hold the same spec."""


class VersionMismatchError(ConfigError):
    """Online scoring: a request (or the guest, asking a host) names a model version other
    than the one this party has promoted; parties never mix shares of two versions."""


class IdBudgetError(PolicyError):
    """Online scoring: a guest's ``Part`` call would take it past the host's ``[serving]
    id_budget`` of distinct ids per window; the call is refused whole (RESOURCE_EXHAUSTED)."""


class DataError(LianmoError):
    """A party's table cannot be used: missing columns, duplicate ids, bad cells.

    Parameters
    ----------
    message : str
        The full message: the file, line, ids and cell values, for the party itself.
    party : str, optional
        The party whose table it is.
    column : str, optional
        The column concerned.
    row : int, optional
        The 1-based data row concerned.
    problem : str, optional
        What is wrong and what to do, without ids, cell values or paths: with the
        fields above and the data set's name it makes :meth:`public_text`.
    """

    exit_code: t.ClassVar[int] = 3

    def __init__(
        self,
        message: str,
        *,
        party: str = "",
        column: str | None = None,
        row: int | None = None,
        problem: str | None = None,
    ) -> None:
        super().__init__(message)
        self.party, self.column, self.row, self.problem = party, column, row, problem

    def public_text(self, dataset: str | None = None) -> str | None:
        """``party 'P', data set 'D', column 'C', data row N: problem`` (known parts only)."""
        if self.problem is None:
            return self.public
        parts = [f"party '{self.party}'"] if self.party else []
        if dataset:
            parts.append(f"data set '{dataset}'")
        if self.column is not None:
            parts.append(f"column '{self.column}'")
        if self.row is not None:
            parts.append(f"data row {self.row}")
        return f"{', '.join(parts)}: {self.problem}" if parts else self.problem


class CryptoError(LianmoError):
    """A key, ciphertext or encoding is invalid for the operation asked of it."""

    exit_code: t.ClassVar[int] = 4


class ProtocolError(LianmoError):
    """A peer sent something the running protocol does not allow."""

    exit_code: t.ClassVar[int] = 5


class UnknownJobError(ProtocolError):
    """A message or request names a job this node is not running."""


class UnexpectedMessageError(ProtocolError):
    """A message came from the wrong sender, with the wrong tag, round or sequence."""


class TransportError(LianmoError):
    """The network failed: a peer stayed unreachable, a deadline passed, bytes corrupted."""

    exit_code: t.ClassVar[int] = 6


class AuthenticationError(TransportError):
    """A peer's TLS identity is missing, untrusted, or not the party the job expects."""

    exit_code: t.ClassVar[int] = 7


class JobFailedError(LianmoError):
    """A job stopped before finishing; ``party`` names who failed and ``reason`` says why."""

    exit_code: t.ClassVar[int] = 8

    def __init__(self, party: str, reason: str) -> None:
        super().__init__(f"job failed at party '{party}': {reason}")
        self.party = party
        self.reason = reason


class JobCancelledError(JobFailedError):
    """A job was cancelled: by this coordinator (``party`` is empty) or, as a party
    reports, by another coordinator process (``lianmo job cancel``)."""

    def __init__(self, job_id: str, reason: str, *, party: str = "") -> None:
        told = f"; party '{party}' reports: {reason}" if party else f" ({reason})"
        LianmoError.__init__(self, f"job '{job_id}' was cancelled{told}")
        self.job_id, self.party, self.reason = job_id, party, reason


class AuditError(LianmoError):
    """An audit log failed verification, or replaying it diverged from what was logged."""

    exit_code: t.ClassVar[int] = 9
