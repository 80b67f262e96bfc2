"""Suites: expansion into run identities, and one clear error per bad entry before anything runs."""

import pytest
from leaderboard_testlib import TINY_VIT, write_suite

from benchmarks.suite import SUITES_DIR, load_suite
from feat2gs.config import CONFIG_DIR
from feat2gs.errors import InputError


def test_expansion_and_stable_ids(tmp_path):
    p = write_suite(tmp_path / "s.yaml", backbones=["iuvrgb", TINY_VIT], modes="GTA", seeds=[0, 1])
    s = load_suite(p)
    assert s.name == "s" and len(s.jobs) == 12
    assert len({j.run_id for j in s.jobs}) == 12
    assert [j.run_id for j in load_suite(p).jobs] == [j.run_id for j in s.jobs]
    j = s.jobs[0].identity
    assert (j.scene, j.dataset, j.backbone, j.mode, j.seed, j.init) == ("synthetic", "synthetic", "iuvrgb", "G", 0,
                                                                        "dataset")
    # the config hash sees overrides: a different schedule is a different run
    p2 = write_suite(tmp_path / "s2.yaml", backbones=["iuvrgb"], modes="G", overrides=["train.steps=16"])
    assert load_suite(p2).jobs[0].run_id != s.jobs[0].run_id


@pytest.mark.parametrize("kwargs, where, what", [
    (dict(backbones=["iuvrgb", "no-such-net"]), r"backbones\[1\] \(no-such-net\)", "unknown backbone 'no-such-net'"),
    (dict(backbones=["iuvrgb+nope"]), r"backbones\[0\] \(iuvrgb\+nope\)", "unknown backbone 'nope'"),
    (dict(scenes=["synthetic", "nowhere/scene"]), r"scenes\[1\] \(nowhere/scene\)", "unknown scene"),
    (dict(modes="GX"), "modes", "unknown mode 'X'"),
    (dict(preset="no-such-preset"), "preset", "unknown preset 'no-such-preset'"),
    (dict(scenes=[{"path": "synthetic", "preset": "nope"}]), r"scenes\[0\] \(synthetic\)", "unknown preset 'nope'"),
    (dict(overrides=["train.no_such_key=1"]), r"scenes\[0\] x backbones\[0\] \(iuvrgb\) mode G",
     "train.no_such_key"),
    (dict(seeds=["zero"]), "seeds", "expected a list of integers"),
    (dict(colour="blue"), "colour", "unknown suite key"),
])
def test_bad_entries_are_one_error_naming_them(tmp_path, kwargs, where, what):
    p = write_suite(tmp_path / "bad.yaml", data_root=str(tmp_path), **kwargs)
    with pytest.raises(InputError, match=rf"bad.yaml: {where}.*{what}"):
        load_suite(p)


def test_unknown_suite_name():
    with pytest.raises(InputError, match="no such suite; built-in suites: .*smoke"):
        load_suite("no-such-suite")


def test_builtin_suites_parse():
    from backbones import backbone_names

    smoke = load_suite("smoke", check=False)
    assert smoke.path == SUITES_DIR / "smoke.yaml" and smoke.jobs == []
    assert [b.name for b in smoke.backbones] == ["iuvrgb", "noise", "random-vit"]
    assert smoke.modes == ["G", "T", "A"] and smoke.seeds == [0, 1] and len(smoke.scenes) == 4
    paper = load_suite("paper", check=False)
    assert len(paper.scenes) == 30 and len({s.dataset for s in paper.scenes}) == 6
    assert len(paper.backbones) == 13 and paper.modes == ["G", "T", "A"]
    assert {b.name for b in paper.backbones} <= set(backbone_names())
    assert paper.scenes[0].preset == "paper" and (CONFIG_DIR / "paper.yaml").is_file()


def test_smoke_suite_expands_against_the_shared_data(shared_data, monkeypatch):
    monkeypatch.setenv("FEAT2GS_TEST_DATA", str(shared_data))
    smoke = load_suite("smoke")
    assert len(smoke.jobs) == 4 * 3 * 3 * 2 == len({j.run_id for j in smoke.jobs})
    assert {j.identity.backbone for j in smoke.jobs} == {"iuvrgb", "noise", "random-vit"}
    assert {j.identity.dataset for j in smoke.jobs} == {"synthetic", "llff", "middlebury", "dtu"}
