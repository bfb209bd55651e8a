import pytest

from webapp.catalog.registry import TEMPLATES, get_template
from workers.jobs import templates as job_templates


def test_every_catalogue_template_has_a_job_builder_that_takes_its_defaults():
    for key, tmpl in TEMPLATES.items():
        values, errors = tmpl.validate({})
        shape = [64] if tmpl.layouts == ("table",) else [8, 8, 1]  # the digits as a table or as images
        job_templates.check(key, shape)
        if tmpl.ref_params:  # builds on a model the user picks: nothing to default to
            assert set(errors) == {p.name for p in tmpl.ref_params}
            continue
        assert not errors
        model = job_templates.build(key, shape, 10, values)
        assert model.output_shape == (None, 10)


def test_choice_and_reference_parameters():
    feat = get_template("featurizer")
    values, errors = feat.validate({"base": "run:12", "head": "dense", "input_size": "32"})
    assert not errors and values["base"] == "run:12" and values["head"] == "dense" and values["input_size"] == 32
    _, errors = feat.validate({"base": "run:../../etc", "head": "svm"})
    assert set(errors) == {"base", "head"}
    _, errors = get_template("imported").validate({"model": "app:MobileNetV2"})
    assert errors["model"] == "must be an uploaded model file"
    _, errors = get_template("cnn").validate({"optimizer": "lbfgs", "epochs": True, "learning_rate": "nan"})
    assert set(errors) == {"optimizer", "epochs", "learning_rate"}


def test_schema_json_lists_every_parameter():
    from webapp.catalog.registry import schema

    by_key = {t["key"]: t for t in schema()}
    assert set(by_key) == set(TEMPLATES)
    cnn = {p["name"]: p for p in by_key["cnn"]["params"]}
    assert {
        "filters",
        "kernel_size",
        "dense_units",
        "dropout",
        "optimizer",
        "learning_rate",
        "epochs",
        "batch_size",
        "steps_per_epoch",
    } <= set(cnn)
    assert cnn["optimizer"]["kind"] == "choice" and cnn["optimizer"]["choices"] == ["adam", "sgd", "rmsprop"]
    assert cnn["epochs"]["min"] == 1 and cnn["epochs"]["default"] == 3
    assert by_key["lstm"]["layouts"] == ["image", "sequence"]


def test_schema_parses_and_bounds_values():
    lstm = get_template("lstm")
    values, errors = lstm.validate({"hidden_units": "32", "layers": "2", "epochs": "7"})
    assert not errors and values["hidden_units"] == 32 and values["layers"] == 2 and values["epochs"] == 7
    assert values["learning_rate"] == 0.005  # the LSTM default, not the CNN's
    _, errors = lstm.validate({"layers": "9", "hidden_units": "1.5", "bogus": "1"})
    assert set(errors) == {"layers", "hidden_units", "bogus"}
    with pytest.raises(ValueError, match="unknown template"):
        get_template("gan")


def test_only_the_mlp_takes_table_rows():
    for key in ("cnn", "lstm", "featurizer"):
        with pytest.raises(ValueError):
            job_templates.check(key, [13])
    with pytest.raises(ValueError, match="the mlp template needs table rows shaped \\[features\\]"):
        job_templates.check("mlp", [8, 8, 1])
    assert get_template("mlp").layouts == ("table",)
