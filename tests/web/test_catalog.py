import pytest

from webapp.catalog.registry import TEMPLATES, get_template
from workers.jobs import templates as job_templates


def test_every_catalogue_template_has_a_job_builder_that_takes_its_defaults():
    for key, tmpl in TEMPLATES.items():
        values, errors = tmpl.validate({})
        assert not errors
        job_templates.check(key, [8, 8, 1])
        model = job_templates.build(key, [8, 8, 1], 10, values)
        assert model.output_shape == (None, 10)


def test_schema_parses_and_bounds_values():
    lstm = get_template("lstm")
    values, errors = lstm.validate({"hidden_units": "32", "layers": "2", "epochs": "7"})
    assert not errors and values["hidden_units"] == 32 and values["layers"] == 2 and values["epochs"] == 7
    assert values["learning_rate"] == 0.005  # the LSTM default, not the CNN's
    _, errors = lstm.validate({"layers": "9", "hidden_units": "1.5", "bogus": "1"})
    assert set(errors) == {"layers", "hidden_units", "bogus"}
    with pytest.raises(ValueError, match="unknown template"):
        get_template("gan")
