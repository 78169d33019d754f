import pytest

from kerasdec.presets import epochs_for, preset


@pytest.mark.parametrize("n, epochs", [(33, 35), (25, 40), (20, 50), (15, 70), (10, 90), (5, 150),
                                       (None, 35), (12, 90), (4, 150)])
def test_ksdd_epochs_by_positives(n, epochs):
    assert epochs_for("ksdd", n) == epochs


def test_icpr_ksdd_settings():
    cfg = preset("ksdd", positives=10, root="r")
    assert (cfg.train.lr, cfg.train.delta, cfg.train.batch_size, cfg.train.epochs) == (0.5, 0.01, 1, 90)
    assert (cfg.data.width, cfg.data.height, cfg.data.channels) == (512, 1408, 1)
    assert (cfg.data.p, cfg.data.w_pos, cfg.data.dilate, cfg.data.positives) == (2.0, 1.0, 1, 10)


def test_severstal_dagm_and_mixed_supervision_settings():
    sev = preset("severstal", positives=750, root="r")
    assert (sev.train.epochs, sev.train.lr, sev.train.delta, sev.train.batch_size) == (70, 0.1, 0.1, 10)
    dagm = preset("dagm", root="r", category=3, protocol="cis2021").train
    assert (dagm.epochs, dagm.lr, dagm.batch_size) == (70, 0.05, 1)
    k2 = preset("ksdd2", root="r")
    assert (k2.train.epochs, k2.train.lr) == (50, 0.01)
    assert (k2.data.w_pos, k2.data.dilate, k2.data.channels) == (3.0, 15, 3)


def test_unknown_protocol_for_dataset():
    with pytest.raises(ValueError, match=r"protocol='icpr2020' has no published settings for dataset='ksdd2"):
        preset("ksdd2", root="r", protocol="icpr2020")


# Every published preset, pinned (METHOD.md §7): (protocol, dataset, extra) ->
# (epochs, lr, delta, batch, p, w_pos, dilate). No recipe may change these.
PUBLISHED = [
    ("icpr2020", "dagm", {"category": 1}, (60, 0.01, 1.0, 5, 1.0, 20.0, 1)),
    ("icpr2020", "ksdd", {}, (35, 0.5, 0.01, 1, 2.0, 1.0, 1)),
    ("icpr2020", "severstal", {}, (40, 0.1, 0.1, 10, 2.0, 1.0, 1)),
    ("cis2021", "ksdd2", {}, (50, 0.01, 1.0, 1, 2.0, 3.0, 15)),
    ("cis2021", "dagm", {"category": 1}, (70, 0.05, 1.0, 1, 1.0, 10.0, 7)),
    ("cis2021", "ksdd", {}, (50, 1.0, 0.01, 1, 2.0, 1.0, 7)),
]


@pytest.mark.parametrize("protocol, dataset, extra, expected", PUBLISHED)
def test_published_presets_are_pinned_and_unaugmented(protocol, dataset, extra, expected):
    from kerasdec.recipes import apply_recipe

    cfg = preset(dataset, protocol=protocol, root="r", **extra)
    t, d = cfg.train, cfg.data
    assert (t.epochs, t.lr, t.delta, t.batch_size, d.p, d.w_pos, d.dilate) == expected
    assert (t.steps, d.augment_geometry, d.augment_jitter) == (None, "none", 0.0)
    assert (t.dynamic_balance, t.gradient_adjustment, d.weighted_seg, d.frequency_sampling) == (True,) * 4
    assert apply_recipe(cfg, "published") == cfg
