"""Model shares: one base reads, checks and writes every kind; scoring finds the kind by format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lianmo.errors import ConfigError, DataError
from lianmo.models.encoding import ImputeOneHot
from lianmo.models.scaler import QuantileClipper, Standardizer
from lianmo.node.boost_share import BoostShare
from lianmo.node.job import kind_of_share
from lianmo.node.model_share import LrShare, share_format
from lianmo.node.vocabulary import check_vocabulary
from lianmo.protocols.tree_route import SplitRule


def _lr(role: str = "host") -> LrShare:
    return LrShare(
        job_id="j",
        party="platform",
        role=role,
        dataset="d",
        feature_names=("a", "b"),
        weights=(0.5, -1.0),
        intercept=0.25 if role == "guest" else None,
        mean=(0.0, 1.0),
        scale=(1.0, 2.0),
    )


def test_a_share_written_reads_back_equal_and_names_its_digest(tmp_path: Path) -> None:
    share = _lr()
    digest = share.write(tmp_path)
    assert len(digest) == 64 and (tmp_path / "model.json").read_bytes() == share.to_json()
    assert LrShare.load(tmp_path / "model.json", party="platform", role="host") == share
    assert kind_of_share(tmp_path / "model.json", "platform").name == "hetero_lr"


@pytest.mark.parametrize(
    ("party", "role", "match"),
    [
        ("broker", "host", "it belongs to host 'platform'"),
        ("platform", "guest", "it belongs to host 'platform'"),
    ],
)
def test_a_share_of_another_party_or_role_is_refused(
    tmp_path: Path, party: str, role: str, match: str
) -> None:
    _lr().write(tmp_path)
    with pytest.raises(ConfigError, match=f"not a consistent {role} share of a hetero LR.*{match}"):
        LrShare.load(tmp_path / "model.json", party=party, role=role)


def test_missing_malformed_and_foreign_shares_get_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    with pytest.raises(ConfigError, match="has no model share at .*was model_job trained"):
        kind_of_share(path, "platform")
    with pytest.raises(ConfigError, match="has no model share at"):
        BoostShare.load(path, party="platform", role="host")
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="is not a model share this lianmo version can score"):
        kind_of_share(path, "platform")
    with pytest.raises(ConfigError, match="model share .* is malformed"):
        LrShare.load(path, party="platform", role="host")
    _lr().write(tmp_path)
    with pytest.raises(
        ConfigError,
        match=r"not a SecureBoost model share \(format .lianmo.hetero_lr.share/v1., expected",
    ):
        BoostShare.load(path, party="platform", role="host")
    raw = json.loads(path.read_bytes())
    raw["weights"] = [1.0]
    path.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="2 features but 1 weights"):
        LrShare.load(path, party="platform", role="host")


def _encoded_lr(role: str = "host") -> LrShare:
    """A share whose party has a numeric column with missing cells and a categorical one."""
    train = np.array([[1.0, 0.0], [np.nan, 1.0], [3.0, 0.0], [5.0, np.nan], [2.0, 2.0],
                      [np.nan, 0.0], [4.0, np.nan]])  # fmt: skip
    encoding = ImputeOneHot.fit(train, ["amount", "status"], {"status": ("late", "ok", "x")},
                                min_rows=2)  # fmt: skip
    width = len(encoding.output_names)  # amount, its indicator, late, other, missing
    return LrShare(
        job_id="j",
        party="platform",
        role=role,
        dataset="d",
        feature_names=("amount", "status"),
        weights=tuple(float(i) for i in range(1, width + 1)),
        intercept=0.25 if role == "guest" else None,
        mean=(0.0,) * width,
        scale=(2.0,) * width,
        format=share_format(encoding),
        encoding=encoding,
    )


def test_a_share_with_an_encoding_is_v2_reads_back_and_scores_raw_rows(tmp_path: Path) -> None:
    share = _encoded_lr()
    share.write(tmp_path)
    raw = json.loads((tmp_path / "model.json").read_bytes())
    assert raw["format"] == "lianmo.hetero_lr.share/v2"
    assert raw["encoding"]["columns"][1]["vocabulary"] == ["late", "ok", "x"]
    again = LrShare.load(tmp_path / "model.json", party="platform", role="host")
    assert again == share and again.categories == {"status": ("late", "ok", "x")}
    assert kind_of_share(tmp_path / "model.json", "platform").name == "hetero_lr"
    # amount missing -> median 3 + indicator; status 7 (unseen) -> <other>
    assert share.encoding is not None
    assert share.encoding.output_names == (
        "amount", "amount=<missing>", "status=late", "status=<other>", "status=<missing>"
    )  # fmt: skip
    X = np.array([[np.nan, 7.0], [4.0, 0.0]])
    expected = np.array([[3.0, 1, 0, 1, 0], [4.0, 0, 1, 0, 0]]) @ np.arange(1.0, 6.0) / 2.0
    np.testing.assert_allclose(again.partial_scores(X), expected)


def test_a_numeric_share_stays_v1_byte_for_byte_and_refuses_missing_cells() -> None:
    share = _lr()
    assert json.loads(share.to_json()) == {
        "job_id": "j", "party": "platform", "role": "host", "dataset": "d",
        "feature_names": ["a", "b"], "weights": [0.5, -1.0], "intercept": None,
        "mean": [0.0, 1.0], "scale": [1.0, 2.0], "format": "lianmo.hetero_lr.share/v1",
    }  # fmt: skip
    with pytest.raises(DataError, match="column 'b' has a missing cell, but model 'j' was"):
        share.partial_scores(np.array([[1.0, np.nan]]))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"format": "lianmo.hetero_lr.share/v1"}, "format 'lianmo.hetero_lr.share/v1' with an"),
        ({"weights": [1.0, 2.0]}, "5 encoded columns but 2 weights"),
        ({"feature_names": ["amount", "other"]}, "reads other columns than its feature_names"),
        ({"encoding": {"kind": "woe"}}, "unknown encoding kind 'woe'"),
    ],
)
def test_an_inconsistent_encoded_share_is_refused(
    tmp_path: Path, change: dict[str, object], match: str
) -> None:
    _encoded_lr().write(tmp_path)
    path = tmp_path / "model.json"
    raw = json.loads(path.read_bytes())
    raw.update(change)
    path.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match=match):
        LrShare.load(path, party="platform", role="host")


def _clipped_lr(encoded: bool) -> tuple[LrShare, np.ndarray]:
    """A share fitted as a training job fits it: encode, clip at 2%, standardise."""
    rng = np.random.default_rng(8)
    train = np.column_stack([rng.lognormal(0, 2, 400), rng.integers(0, 3, 400).astype(float)])
    base = _encoded_lr() if encoded else _lr()
    encoded_train = base.encode(train)
    clip = QuantileClipper.fit(encoded_train, 0.02)
    scaler = Standardizer.fit(clip.transform(encoded_train))
    share = LrShare(
        job_id="j",
        party="platform",
        role="host",
        dataset="d",
        feature_names=base.feature_names,
        weights=base.weights,
        intercept=None,
        mean=tuple(scaler.mean.tolist()),
        scale=tuple(scaler.scale.tolist()),
        format=share_format(base.encoding, clip),
        encoding=base.encoding,
        clip=clip,
    )
    return share, train


@pytest.mark.parametrize("encoded", [False, True])
def test_a_clipped_share_is_v3_reads_back_and_scores_with_the_training_transform(
    tmp_path: Path, encoded: bool
) -> None:
    share, train = _clipped_lr(encoded)
    share.write(tmp_path)
    raw = json.loads((tmp_path / "model.json").read_bytes())
    assert raw["format"] == "lianmo.hetero_lr.share/v3"
    assert set(raw["clip"]) == {"lower", "upper"} and ("encoding" in raw) == encoded
    again = LrShare.load(tmp_path / "model.json", party="platform", role="host")
    assert again == share
    assert kind_of_share(tmp_path / "model.json", "platform").name == "hetero_lr"
    assert again.clip is not None and share.clip is not None
    np.testing.assert_array_equal(again.clip.upper, share.clip.upper)
    # a new row far beyond training is scored at the training bound, as training saw it
    new = np.vstack([train[:5], [[1e12, 1.0]]])
    encoded_new = share.encode(new)
    bounded = np.minimum(np.maximum(encoded_new, share.clip.lower), share.clip.upper)
    expected = (bounded - np.array(share.mean)) / np.array(share.scale) @ np.array(share.weights)
    np.testing.assert_array_equal(again.partial_scores(new), expected)
    assert (
        again.partial_scores(new)[-1]
        == again.partial_scores(np.array([[share.clip.upper[0], 1.0]]))[0]
    )


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"format": "lianmo.hetero_lr.share/v2"}, "v2. with an encoding, with clipping"),
        ({"clip": {"lower": [0.0], "upper": [1.0]}}, "1 clipping bounds but 5 weights"),
        ({"clip": {"lower": [1.0] * 5, "upper": [0.0] * 5}}, "malformed: clipper bounds"),
        ({"clip": [0.0, 1.0]}, "malformed: 'clip' is list"),
    ],
)
def test_an_inconsistent_clipped_share_is_refused(
    tmp_path: Path, change: dict[str, object], match: str
) -> None:
    _clipped_lr(encoded=True)[0].write(tmp_path)
    path = tmp_path / "model.json"
    raw = json.loads(path.read_bytes())
    raw.update(change)
    path.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match=match):
        LrShare.load(path, party="platform", role="host")


def test_v1_and_v2_shares_written_before_clipping_still_load_and_score_unclipped(
    tmp_path: Path,
) -> None:
    for share in (_lr(), _encoded_lr()):
        share.write(tmp_path)
        raw = json.loads((tmp_path / "model.json").read_bytes())
        assert "clip" not in raw and raw["format"] in (
            "lianmo.hetero_lr.share/v1",
            "lianmo.hetero_lr.share/v2",
        )
        again = LrShare.load(tmp_path / "model.json", party="platform", role="host")
        assert again.clip is None
        X = np.array([[1e9, 1.0]])  # no bound applies
        expected = share.scaler().transform(share.encode(X)) @ np.array(share.weights)
        np.testing.assert_array_equal(again.partial_scores(X), expected)


@pytest.mark.parametrize(
    ("read", "match"),
    [
        ({}, "column 'status' of data set 'd' was categorical when the model was trained"),
        ({"status": ("late", "ok", "x"), "amount": ("1",)}, "'amount' .* is read as categories"),
        ({"status": ("ok", "late", "x")}, "'status' .* was read with other category codes"),
    ],
)
def test_a_scoring_table_read_with_other_codes_is_refused(
    read: dict[str, tuple[str, ...]], match: str
) -> None:
    trained = _encoded_lr().categories
    check_vocabulary("platform", "d", trained, {"status": ("late", "ok", "x", "new")})
    with pytest.raises(DataError, match=f"party 'platform': .*{match}"):
        check_vocabulary("platform", "d", trained, read)


def _host_boost_share(default_left: bool) -> BoostShare:
    return BoostShare(
        job_id="j",
        party="platform",
        role="host",
        dataset="d",
        feature_names=("a", "b"),
        depth=3,
        rules={7: SplitRule(1, 2.5, 0, 1, default_left), 9: SplitRule(0, -1.0, 1, 0)},
    )


def test_a_secureboost_share_keeps_where_missing_cells_go_and_v2_shares_still_load(
    tmp_path: Path,
) -> None:
    path = tmp_path / "model.json"
    share = _host_boost_share(default_left=True)
    share.write(tmp_path)
    assert json.loads(path.read_bytes())["format"] == "lianmo.secureboost.share/v3"
    assert BoostShare.load(path, party="platform", role="host") == share
    # a v2 share (numeric, written before missing values): every default is right
    raw = json.loads(path.read_bytes())
    raw["format"] = "lianmo.secureboost.share/v2"
    for rule in raw["rules"]:
        del rule["default_left"]
    path.write_text(json.dumps(raw))
    old = BoostShare.load(path, party="platform", role="host")
    assert old.rules == _host_boost_share(default_left=False).rules
    assert kind_of_share(path, "platform").name == "secureboost"
    raw["rules"][0]["default_left"] = "yes"
    path.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="malformed: split 7: default_left must be true or false"):
        BoostShare.load(path, party="platform", role="host")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"outputs": 3}, r"5 weights cannot be 3 classes' models"),
        ({"intercepts": [0.1, 0.2]}, "intercepts belong in the guest's share only"),
        (
            {"format": "lianmo.hetero_lr.share/v3"},
            r"v3. with an encoding, with clipping bounds and 5 model",
        ),
    ],
)
def test_an_inconsistent_one_vs_rest_share_is_refused(
    tmp_path: Path, change: dict[str, object], match: str
) -> None:
    share = _clipped_lr(encoded=True)[0]
    assert share.outputs == 1 and len(share.weights) == 5
    raw = json.loads(share.to_json())
    assert "outputs" not in raw and "intercepts" not in raw  # a binary share keeps its bytes
    raw.update(
        {"outputs": 5, "weights": raw["weights"] * 5, "format": "lianmo.hetero_lr.share/v4"}
    )  # five classes' models: loads
    (tmp_path / "model.json").write_text(json.dumps(raw))
    loaded = LrShare.load(tmp_path / "model.json", party="platform", role="host")
    assert loaded.weight_matrix.shape == (5, 5)
    raw.update(change)
    (tmp_path / "model.json").write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match=match):
        LrShare.load(tmp_path / "model.json", party="platform", role="host")
