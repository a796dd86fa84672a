"""``lianmo suitability match`` on the shipped product table and holdings, and the demo's
scenario options."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from lianmo.cli.demo import demo
from lianmo.cli.demo_suitability import score_spec, train_spec
from lianmo.cli.suitability import suitability
from lianmo.config import BoostSpec, JobSpec
from lianmo.demo_data import demo_file


def test_match_writes_levels_products_and_flags(tmp_path: Path) -> None:
    scores = tmp_path / "scores.csv"
    # customer 3 holds P06 (R3) in the shipped holdings; 6 holds P02 (R1) and P04 (R2)
    scores.write_text("id,p_0,p_1,p_2,p_3,class\n3,0.9,0.1,0,0,0\n6,0,0,0.1,0.9,3\n")
    out = tmp_path / "matches.csv"
    result = CliRunner().invoke(
        suitability,
        ["match", "--probabilities", str(scores), "--products", str(demo_file(
            "suitability_products.csv")), "--holdings", str(demo_file("suitability_holdings.csv")),
         "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert lines[1] == "3,C1,1.000000,P01;P02,P06"
    assert lines[2].startswith("6,C4,0.900000,P01;P02;P03;P04;P05;P06;P07;P08;P09;P10,")
    assert "matched 2 customers at confidence 0.8: estimated levels C1 1, C4 1" in result.output
    assert "1 holdings of 1 customers are above their estimated level" in result.output


def test_match_names_the_bad_file_and_line(tmp_path: Path) -> None:
    products = tmp_path / "products.csv"
    products.write_text("product_id,risk_level\nP1,R1\nP2,high\n")
    scores = tmp_path / "scores.csv"
    scores.write_text("id,p_0,p_1\n1,0.5,0.5\n")
    result = CliRunner().invoke(
        suitability,
        ["match", "--probabilities", str(scores), "--products", str(products), "--out",
         str(tmp_path / "m.csv")],
    )  # fmt: skip
    assert result.exit_code != 0
    assert "products.csv line 3: risk level 'high' of product 'P2'" in str(result.exception)


def test_demo_refuses_the_other_scenarios_options() -> None:
    for args, message in (
        (["--scenario", "suitability", "--workflow", "scorecard"], "--workflow and --epochs"),
        (["--scenario", "suitability", "--epochs", "3"], "belong to the credit scenario"),
        (["--confidence", "0.9"], "--confidence belongs to --scenario suitability"),
    ):
        result = CliRunner().invoke(demo, args)
        assert result.exit_code == 2 and message in result.output, result.output


def test_the_demo_specs_train_multiclass_secureboost_and_score_with_it() -> None:
    addresses = {"broker": "127.0.0.1:1", "platform": "127.0.0.1:2"}
    train = JobSpec.from_dict(train_spec(addresses, key_bits=2048))
    assert isinstance(train.model, BoostSpec) and train.model.objective == "multiclass"
    assert [(p.name, p.role) for p in train.parties] == [("broker", "guest"), ("platform", "host")]
    score = JobSpec.from_dict(score_spec(addresses))
    assert (score.task, score.model_job) == ("predict", train.job_id)
