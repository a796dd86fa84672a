"""The scoring service of a party node: a guest's scores per request, a host's part.

Implements :class:`lianmo.transport.scoring.ScoringHandler`; the protocol and what each
side learns are in :mod:`lianmo.protocols.online_score` and docs/serving.md.

Every request is served from the version promoted under its model name at this party
(:mod:`lianmo.node.serving.versions`), loaded once and checked against the share digest
the promotion logged. The guest refuses a request naming another version; it asks each
host for the same version (job id and spec digest), and a host that has promoted another
one refuses, so a score never mixes parts of different models. An id is scored only if
every party has a usable row for it (in its feature store, and with consent for the
model's purpose when the data set has a register); otherwise its answer says why, with no
score. A host that does not answer within the deadline fails the request with its error,
or, with ``[serving] fallback = "guest_only"`` and an LR model, the guest scores from its
own part, the host's taken at its training mean (0), and marks the score a fallback.

A host answers each guest about at most ``[serving] id_budget`` distinct ids per window
(:mod:`lianmo.node.serving.id_budget`); past it, the ``Part`` call is refused whole and
the guest gives each id of the request an error naming the host (no fallback: the budget
would be pointless if the guest could score on without the host). Every request, at the
guest and at a host, goes into the party's request record
(:mod:`lianmo.node.serving.request_log`).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass

import numpy as np

from lianmo.audit.signing import SigningKey
from lianmo.config import PartyConfig
from lianmo.errors import (
    AuthenticationError,
    ConfigError,
    DataError,
    IdBudgetError,
    LianmoError,
    ProtocolError,
    TransportError,
    VersionMismatchError,
)
from lianmo.metrics import NodeMetrics
from lianmo.node.boost_share import BoostShare
from lianmo.node.data_use import purpose_entry
from lianmo.node.model_share import LrShare
from lianmo.node.scorecard_job import party_reasons
from lianmo.node.scorecard_share import ScorecardShare
from lianmo.node.serving.boost_tables import BoostTables
from lianmo.node.serving.coalesce import Coalescer
from lianmo.node.serving.consent_gate import ConsentGate
from lianmo.node.serving.features import FeatureSource, ModelColumns, SqliteStore
from lianmo.node.serving.id_budget import IdBudget
from lianmo.node.serving.request_log import RequestLog, sealing_key
from lianmo.node.serving.versions import DEFAULT_NAME, Promotion, Version, VersionLog, read_version
from lianmo.node.share import SHARE_FILE
from lianmo.protocols.online_score import Forest, SplitTable, log_odds, lr_scores
from lianmo.transport.scoring import (
    Cell,
    IdScore,
    PartAnswer,
    PartQuery,
    ScoreAnswer,
    ScoreQuery,
)

_LOG = logging.getLogger("lianmo.node")
#: asks one host for its part: (host, query, timeout in seconds) -> its answer
PartCaller = Callable[[str, PartQuery, float], PartAnswer]
#: a host's errors re-raised as they are, with the guest's words added (others: transport)
_SAME_TEXT_ERRORS = (
    AuthenticationError,
    ConfigError,
    DataError,
    ProtocolError,
    TransportError,
    VersionMismatchError,
)
#: the time kept back from a deadline to combine and answer after the hosts
MARGIN_S = 0.005


@dataclass(frozen=True)
class Served:
    """A promoted version loaded for serving at this party."""

    name: str
    promotion: Promotion
    version: Version
    share: LrShare | BoostShare | ScorecardShare
    columns: ModelColumns
    store: FeatureSource
    consent: ConsentGate
    task: str  # binary | multiclass | regression
    forest: BoostTables | None = None  # the guest's SecureBoost trees and leaf values
    splits: SplitTable | None = None  # a SecureBoost share's own split rules

    @property
    def linear(self) -> bool:
        """LR or a scorecard: each party's part is a partial log-odds."""
        return isinstance(self.share, LrShare | ScorecardShare)


class ServingService:
    """Answers ``Score`` (as a guest) and ``Part`` (as a host) for this party."""

    def __init__(
        self,
        config: PartyConfig,
        *,
        versions: VersionLog | None = None,
        parts: PartCaller | None = None,
        metrics: NodeMetrics | None = None,
        stores: dict[str, FeatureSource] | None = None,
        signer: SigningKey | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.settings = config.serving
        self.versions = versions or VersionLog(config)
        self._clock = clock
        self.budget = IdBudget(
            config.name, self.settings.id_budget, self.settings.budget_window_s, clock=clock
        )
        self.requests = RequestLog(
            config,
            signer or sealing_key(config),
            clock=clock,
            keep_days=config.request_record_days,
        )
        # concurrent requests' questions to a host go together (coalesce.py)
        self._parts = None if parts is None else Coalescer(parts, self.settings.max_ids).ask
        self._metrics = metrics
        self._stores: dict[str, FeatureSource] = dict(stores or {})
        self._served: dict[tuple[str, str], Served] = {}
        self._lock = threading.Lock()
        self._stores_lock = threading.Lock()
        self._pool = futures.ThreadPoolExecutor(
            max_workers=max(2, min(32, self.settings.max_inflight)), thread_name_prefix="parts"
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.requests.close()

    def warm(self) -> None:
        """Load every promoted version now (the first request then finds it loaded); a
        version that cannot be loaded is logged, and its requests get the error."""
        for name in self.versions.promoted():
            try:
                served = self.served(name)
            except LianmoError as exc:
                _LOG.error("model '%s' cannot be served: %s", name, exc)
                continue
            _LOG.info(
                "serving model '%s': version '%s' (%s, %s)",
                *(name, served.promotion.job_id, served.version.model_type, served.version.role),
            )

    # -- loading -----------------------------------------------------------------------

    def served(self, name: str) -> Served:
        """The version promoted under ``name``, loaded (ConfigError if there is none)."""
        promotion = self.versions.current(name)
        if promotion is None:
            raise ConfigError(
                f"party '{self.config.name}' has no version promoted as model '{name}'; its "
                f"operator runs `lianmo model promote --config PARTY.toml {name} JOB`"
            )
        return self._loaded(name, promotion)

    def _loaded(self, name: str, promotion: Promotion) -> Served:
        """``promotion`` of model ``name``, loaded once and kept."""
        key = (name, promotion.job_id)
        found = self._served.get(key)
        if found is not None and found.promotion == promotion:
            return found
        with self._lock:
            found = self._served.get(key)
            if found is None or found.promotion != promotion:
                found = self.load(name, promotion)
                self._served[key] = found
            return found

    def load(self, name: str, promotion: Promotion) -> Served:
        """Load ``promotion``'s share, feature store and consent register for serving."""
        party = self.config.name
        folder = self.config.state_dir / "jobs" / promotion.job_id
        version = read_version(self.config, folder)
        if version is None or version.model_sha256 != promotion.model_sha256:
            raise ConfigError(
                f"party '{party}': the share of version '{promotion.job_id}' (model '{name}') "
                f"is missing or changed since it was promoted ({folder / SHARE_FILE}); restore "
                "it, or promote another version"
            )
        kinds: dict[str, type[LrShare | BoostShare | ScorecardShare]] = {
            "secureboost": BoostShare,
            "hetero_lr": LrShare,
            "scorecard": ScorecardShare,
        }
        share = kinds[version.model_type].load(folder / SHARE_FILE, party=party, role=version.role)
        entry = purpose_entry(party, self.config.dataset(share.dataset), version.purpose)
        if entry.columns is not None and not set(share.feature_names) <= set(entry.columns):
            raise ConfigError(
                f"party '{party}': data set '{entry.name}' no longer offers every column "
                f"version '{promotion.job_id}' reads for purpose '{version.purpose}'"
            )
        store = self._store(entry.name)
        categories = dict(share.categories)
        numeric_now = [c for c in categories if c not in entry.categorical]
        if numeric_now:
            raise ConfigError(
                f"party '{party}': column '{numeric_now[0]}' is categorical in version "
                f"'{promotion.job_id}' but not in data set '{entry.name}''s categorical list"
            )
        consent = ConsentGate(
            party,
            entry,
            version.purpose,
            refresh_s=self.settings.refresh_s,
            consent_refresh_s=self.settings.consent_refresh_s,
        )
        columns = ModelColumns(party, share.feature_names, categories)
        served = Served(name, promotion, version, share, columns, store, consent, "binary")
        if isinstance(share, LrShare):
            task = "binary" if share.outputs == 1 else "multiclass"
            return dataclasses.replace(served, task=task)
        if isinstance(share, ScorecardShare):
            return dataclasses.replace(served, task="scorecard")
        if version.role == "guest":
            model = share.guest_model()
            forest = Forest.of(model.trees, share.depth, party, model.rules, version.hosts)
            tables = BoostTables.of(model, forest)
            return dataclasses.replace(served, task=model.objective.name, forest=tables)
        return dataclasses.replace(served, splits=SplitTable.of(share.rules))

    def _store(self, dataset: str) -> FeatureSource:
        with self._stores_lock:
            store = self._stores.get(dataset)
            if store is None:
                store = SqliteStore(
                    self.config.name,
                    self.config.dataset(dataset),
                    self.config.state_dir / "features",
                    refresh_s=self.settings.refresh_s,
                )
                self._stores[dataset] = store
            return store

    # -- the guest ---------------------------------------------------------------------

    def score(self, caller: str, query: ScoreQuery, time_left: float | None) -> ScoreAnswer:
        started = time.monotonic()
        name = query.model or DEFAULT_NAME
        outcome, said = "error", ""  # said: the request record's outcome
        answer: ScoreAnswer | None = None
        if self._metrics is not None:
            self._metrics.serving_inflight.inc()
        try:
            answer = self._score(caller, name, query, time_left)
            outcome = "fallback" if answer.fallback_hosts else "ok"
            return answer
        except AuthenticationError:
            outcome = "refused"
            raise
        except VersionMismatchError:
            said = "refused"
            raise
        finally:
            answered = None if answer is None else [bool(s.values) for s in answer.scores]
            version = query.version if answer is None else answer.version
            said = said or ("ok" if outcome == "fallback" else outcome)
            self.requests.add("Score", caller, name, version, query.ids, answered, said)
            if self._metrics is not None:
                self._metrics.serving_inflight.dec()
                shape = "single" if len(query.ids) == 1 else "batch"
                self._metrics.serving_requests.labels(model=name, outcome=outcome).inc()
                self._metrics.serving_seconds.labels(model=name, shape=shape).observe(
                    time.monotonic() - started
                )
                self._metrics.serving_ids.labels(model=name).inc(len(query.ids))

    def _score(
        self, caller: str, name: str, query: ScoreQuery, time_left: float | None
    ) -> ScoreAnswer:
        party = self.config.name
        if caller not in self.settings.clients:
            raise AuthenticationError(
                f"party '{party}' serves scores only to {list(self.settings.clients)} "
                f"([serving] clients); '{caller}' is not one of them"
            )
        served = self.served(name)
        version = served.promotion.job_id
        if served.version.role != "guest":
            raise ConfigError(
                f"party '{party}' holds a {served.version.role}'s share of model '{name}'; ask "
                f"its guest '{served.version.guest}' for scores"
            )
        if query.version and query.version != version:
            raise VersionMismatchError(
                f"party '{party}' serves version '{version}' of model '{name}', not "
                f"'{query.version}'; name no version to use the promoted one"
            )
        ids = query.ids
        if len(ids) > self.settings.max_ids:
            raise ProtocolError(
                f"the request names {len(ids)} ids; party '{party}' scores at most "
                f"{self.settings.max_ids} per request ([serving] max_ids)"
            )
        errors = [""] * len(ids)
        ok = served.consent.allowed(ids)
        for k in np.flatnonzero(~ok):
            errors[k] = f"no consent for purpose '{served.version.purpose}' at party '{party}'"
        X, have = self._guest_rows(served, ids, query.features, ok)
        for k in np.flatnonzero(ok & ~have):
            errors[k] = f"party '{party}' has no features for this id"
        live = np.flatnonzero(ok & have)
        budget = self.settings.deadline_ms / 1000
        if time_left is not None:
            budget = min(budget, time_left - MARGIN_S)
        parts, failed = self._ask_hosts(served, [ids[k] for k in live], budget)
        over = {h: e for h, e in failed.items() if isinstance(e, IdBudgetError)}
        failed = {h: e for h, e in failed.items() if h not in over}
        fallback = tuple(failed)
        if failed and not (served.linear and self.settings.fallback == "guest_only"):
            host, error = next(iter(failed.items()))
            text = f"party '{party}' got no part of model '{name}' from host '{host}': {error}"
            kind = type(error) if type(error) in _SAME_TEXT_ERRORS else TransportError
            raise kind(text) from error
        usable = np.ones(len(live), dtype=bool)
        for host, part in parts.items():
            for j in np.flatnonzero(~part.found):
                errors[live[j]] = f"party '{host}' has no usable row for this id"
            usable &= part.found
        for host, error in over.items():  # no fallback past a host's id budget
            usable[:] = False
            why = str(error).partition("id budget: ")[2] or str(error)
            for k in live:
                errors[k] = f"party '{host}' refused: id budget ({why})"
        rows = live[usable]
        scored = self._combine(served, X[rows], parts, usable) if len(rows) else []
        scores = []
        at = {int(k): j for j, k in enumerate(rows.tolist())}
        for i, id_ in enumerate(ids):
            if i in at:
                scores.append(dataclasses.replace(scored[at[i]], id=id_, fallback=bool(fallback)))
            else:
                scores.append(IdScore(id_, (), errors[i]))
        return ScoreAnswer(name, version, served.task, tuple(scores), fallback)

    def _guest_rows(
        self,
        served: Served,
        ids: Sequence[str],
        given: Sequence[dict[str, Cell]],
        wanted: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The guest's inputs per id (rows of ids without a row are NaN) and which it has."""
        names = served.columns.feature_names
        need = [ids[k] for k in np.flatnonzero(wanted).tolist()]
        stored = served.store.lookup(need) if need else {}
        columns = list(served.store.columns)
        where = {c: j for j, c in enumerate(columns)}
        blank: list[Cell] = [None] * len(columns)
        cells: list[Sequence[Cell]] = []
        have = np.zeros(len(ids), dtype=bool)
        for k, id_ in enumerate(ids):
            row: Sequence[Cell] | None = stored.get(id_) if wanted[k] else None
            own = given[k] if given and wanted[k] else {}
            if own:
                unknown = [c for c in own if c not in where]
                if unknown:
                    raise ProtocolError(
                        f"the request gives column {unknown[0]!r} for id number {k + 1}, which "
                        f"party '{self.config.name}' does not hold"
                    )
                if row is not None or all(n in own for n in names):
                    merged = list(row) if row is not None else list(blank)
                    for c, v in own.items():
                        merged[where[c]] = v
                    row = merged
            if row is None:
                cells.append(blank)
                continue
            have[k] = True
            cells.append(row)
        X = served.columns.inputs(columns, cells)
        return X, have

    def _ask_hosts(
        self, served: Served, ids: list[str], budget: float
    ) -> tuple[dict[str, PartAnswer], dict[str, Exception]]:
        hosts = served.version.hosts
        if not ids or not hosts:
            return {}, {}
        if self._parts is None:
            raise ConfigError(
                f"party '{self.config.name}' has no way to reach its hosts: set [serving] peers"
            )
        if budget <= 0:
            raise ProtocolError("the request's deadline passed before the hosts were asked")
        query = PartQuery(
            served.name, served.promotion.job_id, served.promotion.spec_sha256, tuple(ids)
        )
        ask = self._parts
        calls: dict[str, _Now | futures.Future[PartAnswer]]
        if len(hosts) == 1:  # no thread hand-off for the usual single host
            calls = {hosts[0]: _Now(ask, hosts[0], query, budget)}
        else:
            calls = {h: self._pool.submit(ask, h, query, budget) for h in hosts}
        parts: dict[str, PartAnswer] = {}
        failed: dict[str, Exception] = {}
        for host, call in calls.items():
            try:
                part = call.result()
            except LianmoError as exc:
                failed[host] = exc
                if self._metrics is not None:
                    reason = type(exc).__name__
                    self._metrics.serving_peer_errors.labels(peer=host, reason=reason).inc()
                continue
            if part.version != query.version:
                raise ProtocolError(
                    f"host '{host}' answered for version '{part.version}', not "
                    f"'{query.version}'; no score mixes versions"
                )
            parts[host] = part
        return parts, failed

    def _combine(
        self, served: Served, X: np.ndarray, parts: dict[str, PartAnswer], usable: np.ndarray
    ) -> list[IdScore]:
        """The scores of rows ``X`` (ids filled in by the caller)."""
        share = served.share
        if isinstance(share, ScorecardShare):
            codes = share.codes(X)
            total = log_odds(
                share.partial_scores_of_codes(codes), self._linear(served, parts, usable, len(X))
            )
            probability = 1.0 / (1.0 + np.exp(-total))  # as the scorecard's batch scoring
            points = share.scaling.offset - share.scaling.factor * total
            k = share.reason_codes
            names = (
                party_reasons(share, codes, k).names
                if k and len(share.feature_names)
                else np.empty((len(X), 0), dtype=object)
            )
            return [
                IdScore("", (float(p),), points=float(pts), reasons=tuple(str(n) for n in r))
                for p, pts, r in zip(probability, points, names, strict=True)
            ]
        if isinstance(share, LrShare):
            u = share.partial_scores(X)
            values = lr_scores(u, self._linear(served, parts, usable, len(X), u.shape))
        else:
            values = self._boost(served, X, parts, usable)
        return [IdScore("", tuple(float(x) for x in np.atleast_1d(v))) for v in values]

    def _linear(
        self,
        served: Served,
        parts: dict[str, PartAnswer],
        usable: np.ndarray,
        n: int,
        shape: tuple[int, ...] | None = None,
    ) -> list[np.ndarray]:
        """Each host's partial log-odds for the usable rows, in host order (a host that did
        not answer under the guest_only fallback: its training mean, 0)."""
        out = []
        for h in served.version.hosts:
            part = parts.get(h)
            if part is None:
                out.append(np.zeros(shape or (n,)))
                continue
            assert part.partial is not None
            out.append(part.partial[usable].reshape(shape or (n,)))
        return out

    def _boost(
        self, served: Served, X: np.ndarray, parts: dict[str, PartAnswer], usable: np.ndarray
    ) -> np.ndarray:
        hosts = served.version.hosts
        assert isinstance(served.share, BoostShare)
        tables = served.forest
        assert tables is not None
        blocks = [tables.forest.own.sides(X)]
        for h in hosts:
            part = parts[h]
            if part.split_ids is None or part.left is None:
                raise ProtocolError(f"host '{h}' answered without split sides")
            blocks.append(tables.host_columns(h, part.split_ids, part.left[usable]))
        sides = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(X), 0), bool)
        return tables.scores(sides)

    # -- the host ----------------------------------------------------------------------

    def part(self, caller: str, query: PartQuery, time_left: float | None) -> PartAnswer:
        name = query.model or DEFAULT_NAME
        outcome = "error"
        answer: PartAnswer | None = None
        try:
            answer = self._answer_part(caller, name, query)
            outcome = "ok"
            return answer
        except IdBudgetError:
            outcome = "over_budget"
            raise
        except (AuthenticationError, VersionMismatchError):
            outcome = "refused"
            raise
        finally:
            found = None if answer is None else answer.found.tolist()
            self.requests.add("Part", caller, name, query.version, query.ids, found, outcome)
            if self._metrics is not None:
                counted = "refused" if outcome == "over_budget" else outcome
                self._metrics.serving_partials.labels(
                    model=name, caller=caller, outcome=counted
                ).inc()

    def _answer_part(self, caller: str, name: str, query: PartQuery) -> PartAnswer:
        served = self._host_version(caller, name, self.served(name))
        asked = (query.version, query.spec_sha256)
        if asked != (served.promotion.job_id, served.promotion.spec_sha256):
            older = self._handed_over(caller, name, asked)
            if older is None:
                raise VersionMismatchError(
                    f"party '{self.config.name}' serves version '{served.promotion.job_id}' of "
                    f"model '{name}', not '{query.version}'; promote the same version at every "
                    "party of the model, the hosts first (a host still answers for the version "
                    "it replaced for [serving] handover_s)"
                )
            served = older
        party = self.config.name
        if len(query.ids) > self.settings.max_ids:
            raise ProtocolError(
                f"party '{party}' answers at most {self.settings.max_ids} ids per request "
                "([serving] max_ids)"
            )
        try:
            used = self.budget.charge(caller, query.ids)
        except IdBudgetError:
            if self._metrics is not None:
                self._metrics.serving_budget_refusals.labels(model=name, caller=caller).inc()
            raise
        if self._metrics is not None:
            self._metrics.serving_budget_ids.labels(caller=caller).set(used)
        return self._part(served, query.ids)

    def _host_version(self, caller: str, name: str, served: Served) -> Served:
        """``served`` if this party is its host and ``caller`` its guest, else the error."""
        party = self.config.name
        if served.version.role == "guest":
            raise ConfigError(f"party '{party}' is the guest of model '{name}', not a host")
        if caller != served.version.guest:
            raise AuthenticationError(
                f"party '{party}' answers for model '{name}' only to its guest "
                f"'{served.version.guest}', not to '{caller}'"
            )
        return served

    def _handed_over(self, caller: str, name: str, asked: tuple[str, str]) -> Served | None:
        """The version the served one replaced, if ``asked`` (job id, spec digest) names it
        within ``handover_s`` of the promotion: a guest is promoted after its hosts."""
        previous = self.versions.handing_over(name, self.settings.handover_s, self._clock())
        if previous is None or asked != (previous.job_id, previous.spec_sha256):
            return None
        return self._host_version(caller, name, self._loaded(name, previous))

    def _part(self, served: Served, ids: Sequence[str]) -> PartAnswer:
        n = len(ids)
        ok = served.consent.allowed(ids)
        stored = served.store.lookup([i for i, a in zip(ids, ok, strict=True) if a])
        found = np.array([bool(a) and i in stored for i, a in zip(ids, ok, strict=True)])
        rows = [stored[i] for i, f in zip(ids, found, strict=True) if f]
        X = served.columns.inputs(list(served.store.columns), rows)
        version = served.promotion.job_id
        if isinstance(served.share, LrShare | ScorecardShare):
            outputs = served.share.outputs if isinstance(served.share, LrShare) else 1
            partial = np.zeros((n, outputs), dtype=np.float64)
            if len(rows):
                partial[found] = served.share.partial_scores(X).reshape(len(rows), -1)
            return PartAnswer(version, found, partial=partial)
        assert served.splits is not None
        left = np.zeros((n, len(served.splits.ids)), dtype=bool)
        if len(rows):
            left[found] = served.splits.sides(X)
        return PartAnswer(version, found, split_ids=served.splits.ids, left=left)


class _Now:
    """A call made at once, read like a future (one host: no thread hand-off)."""

    def __init__(self, ask: PartCaller, host: str, query: PartQuery, budget: float) -> None:
        self._value: PartAnswer | None = None
        self._error: LianmoError | None = None
        try:
            self._value = ask(host, query, budget)
        except LianmoError as exc:
            self._error = exc

    def result(self) -> PartAnswer:
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value
