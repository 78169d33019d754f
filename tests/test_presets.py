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


def test_published_presets_use_mask_max_and_test_the_published_model():
    for dataset, extra in (("ksdd", {}), ("ksdd2", {}), ("dagm", {"category": 1}), ("severstal", {})):
        cfg = preset(dataset, root="r", **extra)
        assert cfg.data.decision_target == "mask_max", dataset
        assert cfg.data.mask_values == "gray", dataset  # masks read as the reference reads them
        assert cfg.train.test_model == ("best" if dataset == "severstal" else "final"), dataset
        assert cfg.train.drop_last is True
        assert cfg.train.optimizer == "sgd", dataset  # plain SGD, as published
    for dataset in ("synthetic", "folder"):
        cfg = preset(dataset, root="r")
        assert (cfg.data.decision_target, cfg.train.test_model) == ("image_label", "final")
        assert cfg.data.mask_values == "binary"
    assert preset("ksdd", root="r").data.exclude is None  # None = the dataset's default (kos21/Part7)


@pytest.mark.parametrize("n, epochs", [(300, 90), (750, 80), (1500, 60), (3000, 40), (None, 40)])
def test_cis2021_severstal_epochs_and_settings(n, epochs):
    cfg = preset("severstal", positives=n, root="r", protocol="cis2021")
    assert cfg.train.epochs == epochs
    assert (cfg.train.lr, cfg.train.delta, cfg.train.batch_size) == (0.1, 0.1, 10)
    assert (cfg.data.p, cfg.data.w_pos, cfg.data.dilate) == (2.0, 1.0, 1)


def test_cis2021_ksdd_and_dagm_settings():
    k = preset("ksdd", root="r", protocol="cis2021")
    assert (k.train.epochs, k.train.lr, k.train.delta, k.train.batch_size) == (50, 1.0, 0.01, 1)
    assert (k.data.p, k.data.w_pos, k.data.dilate) == (2.0, 1.0, 7)
    d = preset("dagm", root="r", category=2, protocol="cis2021")
    assert (d.train.epochs, d.train.lr, d.train.delta, d.train.batch_size) == (70, 0.05, 1.0, 1)
    assert (d.data.p, d.data.w_pos, d.data.dilate) == (1.0, 10.0, 7)
    icpr = preset("dagm", root="r", category=2)
    assert (icpr.train.epochs, icpr.train.lr, icpr.train.delta, icpr.train.batch_size) == (60, 0.01, 1.0, 5)
    assert (icpr.data.p, icpr.data.w_pos, icpr.data.dilate) == (1.0, 20.0, 1)


def test_no_pixel_labels_rules():
    k = preset("ksdd", root="r", protocol="cis2021", segmented=0)
    assert (k.train.dynamic_balance, k.train.lr, k.train.delta) == (False, 0.01, 1.0)
    k2 = preset("ksdd2", root="r", segmented=0)
    assert (k2.train.dynamic_balance, k2.train.lr, k2.train.delta) == (False, 0.01, 1.0)
    d = preset("dagm", root="r", category=1, protocol="cis2021", segmented=0)
    assert (d.train.dynamic_balance, d.train.lr) == (False, 0.05)
    assert preset("ksdd2", root="r", segmented=16).train.dynamic_balance is True


# Every published preset, pinned (docs/method.md#published-settings): (protocol, dataset, extra) ->
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
