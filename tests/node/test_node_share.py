"""Model shares: one base reads, checks and writes every kind; scoring finds the kind by format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lianmo.errors import ConfigError
from lianmo.node.boost_share import BoostShare
from lianmo.node.job import kind_of_share
from lianmo.node.model_share import LrShare
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
