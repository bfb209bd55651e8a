"""The run filters: URL parameters and the expression language (tokenizer, parser, Q objects) on real rows."""

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.http import QueryDict
from django.utils import timezone

from webapp.datasets.models import Dataset
from webapp.history.filters import NAMES, FilterError, filter_runs, parse_expression, tokenize
from webapp.runs.models import Run


@pytest.fixture
def team_a(alice):
    return alice[1]


@pytest.fixture
def runs(make_run):
    """A small, varied team history."""
    bob = get_user_model().objects.create_user("carol")
    t0 = timezone.make_aware(dt.datetime(2026, 3, 1, 12, 0))
    return {
        "a": make_run(
            "alpha cnn",
            epochs=5,
            batch_size=32,
            learning_rate=0.001,
            status="SUCCEEDED",
            test_accuracy=0.97,
            tags="baseline cnn",
            created_at=t0,
        ),
        "b": make_run(
            "beta cnn",
            epochs=3,
            batch_size=64,
            learning_rate=0.01,
            status="SUCCEEDED",
            test_accuracy=0.91,
            tags="sweep",
            created_at=t0 + dt.timedelta(days=1),
        ),
        "c": make_run(
            "gamma lstm",
            template="lstm",
            epochs=10,
            batch_size=32,
            learning_rate=0.005,
            status="FAILED",
            dataset="seq",
            created_by=bob,
            notes="diverged after the 3rd epoch",
            created_at=t0 + dt.timedelta(days=2),
        ),
        "d": make_run(
            "delta featurizer",
            template="featurizer",
            status="RUNNING",
            tags="baseline sweep",
            created_at=t0 + dt.timedelta(days=3),
        ),
        "e": make_run(
            "old archived",
            epochs=1,
            status="CANCELLED",
            archived=True,
            starred=True,
            created_at=t0 - dt.timedelta(days=30),
        ),
    }


def names(qs):
    return sorted(r.name for r in qs)


def run_filter(params):
    if isinstance(params, str):
        params = QueryDict(params)
    return names(filter_runs(Run.objects.all(), params))


# ---------------------------------------------------------------- tokenizer / parser (no database)


def test_tokenizer_kinds_and_positions():
    toks = tokenize('accuracy>=0.95 and (name ~ "a \\"b\\"" or epochs != -3e1)')
    kinds = [t.kind for t in toks]
    assert kinds == ["word", "op", "num", "word", "(", "word", "op", "str", "word", "word", "op", "num", ")", "end"]
    assert toks[2].value == 0.95 and toks[7].value == 'a "b"' and toks[11].value == -30.0
    assert toks[5].pos == 20


@pytest.mark.parametrize(
    "expr, fragment",
    [
        ("", "is empty"),
        ("accuracy >", "expected a value after accuracy >"),
        ("accuracy 0.9", "expected a comparison operator"),
        ("acuracy > 0.9", "did you mean accuracy?"),
        ("bogus > 1", "unknown name 'bogus'"),
        ("accuracy > 0.9 and", "ends too early"),
        ("(accuracy > 0.9", "expected ')' to close the '(' at character 1"),
        ("accuracy > 0.9)", "expected and, or or the end, found ')'"),
        ("accuracy > 0.9 epochs > 1", "expected and, or or the end, found 'epochs'"),
        ('name = "open', "is not closed"),
        ("accuracy > 0.9 && epochs > 1", "unexpected character '&' (use and / or / not)"),
        ("accuracy > 1e999", "out of range"),
        ("accuracy > 5abc", "neither a number nor a name"),
        ('accuracy > "high"', "accuracy is a number"),
        ("name = 5", 'quote the value: name = "5"'),
        ("name > 'b'", "can only be compared with =, != or ~"),
        ("status = runing", "unknown status 'runing'"),
        ("template = vgg", "unknown template 'vgg'"),
        ("accuracy < null", "null can only be compared with = or !="),
        ("accuracy ~ 1", "~ (contains) is for text"),
        ('created > "yesterday"', "is not a date"),
        ("created > 5", "quoted date"),
        ("epochs > 1e16", "out of range for epochs"),
        ("tag = 'a b'", "tag 'a b'"),
        ("accuracy > -", "unexpected character '-'"),
        ("not", "ends too early"),
        ("and accuracy > 1", "expected a name, not or '('"),
        ("accuracy > and", "expected a value after accuracy >, found 'and'"),
    ],
)
def test_bad_expressions_explain_themselves(expr, fragment):
    with pytest.raises(FilterError) as exc:
        parse_expression(expr)
    assert exc.value.message.startswith("expr: ")
    assert fragment in exc.value.message


def test_position_is_reported():
    with pytest.raises(FilterError, match=r"at character 16"):
        parse_expression("epochs > 1 and bogus = 2")


def test_limits_refuse_huge_or_deep_input():
    with pytest.raises(FilterError, match="at most 1000 characters"):
        parse_expression("epochs > 1 and " * 80 + "epochs > 1")
    with pytest.raises(FilterError, match="nests deeper"):
        parse_expression("(" * 40 + "epochs > 1" + ")" * 40)
    with pytest.raises(FilterError, match="nests deeper"):
        parse_expression("not " * 40 + "epochs > 1")
    with pytest.raises(FilterError, match="more than 50 comparisons"):
        parse_expression(" or ".join(["id=1"] * 51))


def test_nothing_is_evaluated():
    for evil in ("__import__('os').system('x')", "name.__class__ = 1", "epochs > (1)", "open('x')"):
        with pytest.raises(FilterError):
            parse_expression(evil)


def test_every_name_maps_to_a_field():
    for name, spec in NAMES.items():
        assert spec.field, name


# ---------------------------------------------------------------- on rows


@pytest.mark.django_db
def test_expression_example_from_the_issue(runs):
    assert run_filter({"expr": "accuracy > 0.95 and epochs >= 5"}) == ["alpha cnn"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "expr, expected",
    [
        ("accuracy > 0.9", ["alpha cnn", "beta cnn"]),
        ("accuracy > 0.9 or status = failed", ["alpha cnn", "beta cnn", "gamma lstm"]),
        ("not status = SUCCEEDED", ["delta featurizer", "gamma lstm"]),
        ("(epochs = 3 or epochs = 10) and batch_size >= 32", ["beta cnn", "gamma lstm"]),
        ("epochs = 3 or epochs = 10 and batch_size = 64", ["beta cnn"]),  # and binds tighter
        ("not (epochs = 3 or epochs = 10) and epochs > 0", ["alpha cnn"]),
        ("not not epochs = 5", ["alpha cnn"]),
        ("lr < 0.005", ["alpha cnn"]),
        ("learning_rate <= 0.005", ["alpha cnn", "gamma lstm"]),
        ("epochs > 4.5", ["alpha cnn", "gamma lstm"]),  # integer column against a fraction
        ("epochs >= 4.5", ["alpha cnn", "gamma lstm"]),
        ("epochs < 4.5", ["beta cnn"]),
        ("epochs <= 3.5", ["beta cnn"]),
        ("epochs = 4.5", []),
        ("epochs != 4.5", ["alpha cnn", "beta cnn", "gamma lstm"]),
        ("epochs != 5", ["beta cnn", "gamma lstm"]),  # no epochs (featurizer): not "different"
        ("accuracy = null", ["delta featurizer", "gamma lstm"]),
        ("accuracy != null and epochs < 4", ["beta cnn"]),
        ('name ~ "CNN"', ["alpha cnn", "beta cnn"]),
        ("name = 'gamma lstm'", ["gamma lstm"]),
        ("name != 'gamma lstm' and status = running", ["delta featurizer"]),
        ('notes ~ "diverged"', ["gamma lstm"]),
        ("template = LSTM", ["gamma lstm"]),
        ('dataset = "seq"', ["gamma lstm"]),
        ("submitter = carol", ["gamma lstm"]),
        ("submitter != carol", ["alpha cnn", "beta cnn", "delta featurizer"]),
        ('tag = "baseline"', ["alpha cnn", "delta featurizer"]),
        ('tag = "baseline" and tag = "sweep"', ["delta featurizer"]),  # two tags on one run
        ('not tag = "sweep"', ["alpha cnn", "gamma lstm"]),
        ("tag ~ swe", ["beta cnn", "delta featurizer"]),
        ("tag = null", ["gamma lstm"]),
        ('created >= "2026-03-03"', ["delta featurizer", "gamma lstm"]),
        ('created = "2026-03-02"', ["beta cnn"]),
        ('created < "2026-03-02"', ["alpha cnn"]),
        ('created <= "2026-03-02"', ["alpha cnn", "beta cnn"]),
        ('created > "2026-03-02"', ["delta featurizer", "gamma lstm"]),
        ('created > "2026-03-02T13:00"', ["delta featurizer", "gamma lstm"]),
        ('created != "2026-03-02"', ["alpha cnn", "delta featurizer", "gamma lstm"]),
        (
            "executors = 2 and cores >= 1 and memory_mb > 0 and gpus = 0",
            ["alpha cnn", "beta cnn", "delta featurizer", "gamma lstm"],
        ),
    ],
)
def test_expressions(runs, expr, expected):
    assert run_filter({"expr": expr}) == expected


@pytest.mark.django_db
def test_id_and_huge_integers_do_not_reach_the_database_as_errors(runs):
    assert run_filter({"expr": f"id = {runs['a'].pk}"}) == ["alpha cnn"]
    assert run_filter({"expr": "id > 999999999999999"}) == []
    assert run_filter({"expr": "accuracy < 1e300"}) == ["alpha cnn", "beta cnn"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query, expected",
    [
        ("", ["alpha cnn", "beta cnn", "delta featurizer", "gamma lstm"]),
        ("archived=1", ["alpha cnn", "beta cnn", "delta featurizer", "gamma lstm", "old archived"]),
        ("archived=only", ["old archived"]),
        ("archived=only&starred=1", ["old archived"]),
        ("starred=1", []),
        ("status=succeeded,FAILED", ["alpha cnn", "beta cnn", "gamma lstm"]),
        ("status=FAILED&status=RUNNING", ["delta featurizer", "gamma lstm"]),
        ("template=lstm", ["gamma lstm"]),
        ("template=cnn&status=SUCCEEDED", ["alpha cnn", "beta cnn"]),
        ("submitter=carol", ["gamma lstm"]),
        ("submitter=nobody", []),
        ("tag=baseline", ["alpha cnn", "delta featurizer"]),
        ("tag=baseline,sweep", ["delta featurizer"]),
        ("tag=BASELINE&tag=sweep", ["delta featurizer"]),
        ("since=2026-03-02", ["beta cnn", "delta featurizer", "gamma lstm"]),
        ("until=2026-03-02", ["alpha cnn", "beta cnn"]),
        ("since=2026-03-02T12:00:00&until=2026-03-03T11:00", ["beta cnn"]),
        ("since=2026-03-02T12:00:00%2B01:00&until=2026-03-02T12:30Z", ["beta cnn"]),
        ("q=cnn", ["alpha cnn", "beta cnn"]),
        ("q=DIVERGED", ["gamma lstm"]),
        ("q=baseline", ["alpha cnn", "delta featurizer"]),
        ("q=baseline alpha", ["alpha cnn"]),
        ("q=zzz", []),
        ("q=cnn&expr=accuracy > 0.95", ["alpha cnn"]),
        ("expr=epochs > 1&expr=batch_size = 32", ["alpha cnn", "gamma lstm"]),
        ("status=&template=&q=&expr=&since=", ["alpha cnn", "beta cnn", "delta featurizer", "gamma lstm"]),
    ],
)
def test_url_parameters(runs, query, expected):
    assert run_filter(query) == expected


@pytest.mark.django_db
def test_dataset_parameter_takes_ids(runs):
    seq = runs["c"].dataset_id
    assert run_filter({"dataset": str(seq)}) == ["gamma lstm"]
    assert run_filter({"dataset": [str(seq), str(runs["a"].dataset_id)]}) == [
        "alpha cnn",
        "beta cnn",
        "delta featurizer",
        "gamma lstm",
    ]


@pytest.mark.django_db
def test_sweep_parameter_and_name_select_a_sweep_s_trials(make_sweep, make_run):
    first = make_sweep(name="lr", trials=[{"value": 0.9}, {"value": 0.8}])
    second = make_sweep(name="dropout", trials=[{"value": 0.7}])
    lone = make_run("not a trial")
    by_param = filter_runs(Run.objects.all(), {"sweep": str(first.pk)})
    assert names(by_param) == ["lr · trial 0", "lr · trial 1"]
    both = filter_runs(Run.objects.all(), {"sweep": f"{first.pk},{second.pk}"})
    assert len(both) == 3 and lone not in both
    assert names(filter_runs(Run.objects.all(), {"expr": f"sweep = {second.pk}"})) == ["dropout · trial 0"]
    with pytest.raises(FilterError, match="sweep: sweep ids are whole numbers"):
        filter_runs(Run.objects.all(), {"sweep": "lr"})


@pytest.mark.parametrize(
    "params, fragment",
    [
        ({"status": "DONE"}, "status: unknown status 'DONE'"),
        ({"template": "resnet"}, "template: unknown template 'resnet'"),
        ({"dataset": "digits"}, "dataset: dataset ids are whole numbers"),
        ({"tag": "no/slash"}, "tag: tag 'no/slash'"),
        ({"since": "last week"}, "since: 'last week' is not a date"),
        ({"until": "2026-02-30"}, "until: '2026-02-30' is not a date"),
        ({"archived": "maybe"}, "archived: 'maybe' is not one of"),
        ({"starred": "2"}, "starred: '2' is not one of"),
        ({"q": "x" * 201}, "q: at most 200 characters"),
        ({"q": "a b c d e f g h i"}, "q: at most 8 words"),
        ({"status": ",".join(["QUEUED"] * 51)}, "status: at most 50 values"),
        ({"expr": "epochs >"}, "expr: expected a value"),
    ],
)
def test_bad_parameters_raise_filter_error(params, fragment):
    with pytest.raises(FilterError) as exc:
        filter_runs(Run.objects.none(), params)
    assert fragment in exc.value.message


@pytest.mark.django_db
def test_filters_never_widen_the_given_queryset(runs, make_member, cluster):
    """filter_runs only narrows: another team's runs stay out whatever the expression says."""
    user_b, team_b = make_member("bob", "Team B")
    ds = Dataset.objects.create(team=team_b, name="digits", status="READY", shape=[8, 8, 1], num_classes=10)
    Run.objects.create(team=team_b, created_by=user_b, name="alpha of b", dataset=ds, cluster=cluster, template="cnn")
    team_a = runs["a"].team
    qs = filter_runs(Run.objects.filter(team=team_a), {"expr": 'name ~ "alpha" or id > 0', "archived": "1"})
    assert "alpha of b" not in names(qs)
