"""What the API reads and writes. Requests are validated here for types and ranges; the rules about
runs and datasets stay in their services (create_run, create_dataset, history.services)."""

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from webapp import params
from webapp.accounts.models import Team
from webapp.accounts.services import can_edit_run
from webapp.catalog.registry import TEMPLATES
from webapp.clusters.models import Cluster
from webapp.datasets.models import Dataset
from webapp.datasets.services import DEFAULT_TEST_FRACTION
from webapp.registry.models import ModelVersion, RegisteredModel
from webapp.registry.services import MAX_DESCRIPTION, MAX_VERSION
from webapp.runs import analysis, artifacts, metrics
from webapp.runs.artifacts import MAX_CHUNK
from webapp.runs.models import MAX_TAG_LENGTH, MAX_TAGS, Run
from webapp.runs.views import X_LIMIT
from webapp.sweeps import services as sweep_services
from webapp.sweeps import space as search_space
from webapp.sweeps.models import Sweep, Trial, TrialEpoch

MAX_INT = params.MAX_INT32  # PostgreSQL integer columns
WIDEST_INT = 10**20 - 1  # what an integer field reads at all; its own range then says whether it fits


def _url(request, name, *args):
    path = reverse(name, args=args)
    return request.build_absolute_uri(path) if request is not None else path


class StrictIntegerField(serializers.IntegerField):
    """An integer read by webapp.params (ASCII digits only): DRF's own takes '٣', ' 1 ', '1.0' and True."""

    def __init__(self, **kwargs):
        # Bounded always, so the schema says how big a value may be.
        kwargs.setdefault("min_value", -params.MAX_ID)
        kwargs.setdefault("max_value", params.MAX_ID)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        # The format here; the field's own range after, with DRF's messages.
        try:
            return params.parse_int(data, self.field_name, min_value=-WIDEST_INT, max_value=WIDEST_INT)
        except params.BadParam:
            self.fail("invalid")


class StrictFloatField(serializers.FloatField):
    """A finite number read by webapp.params (DRF's own takes 'nan', '٣' and True)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", -params.MAX_FLOAT)
        kwargs.setdefault("max_value", params.MAX_FLOAT)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        try:
            return params.parse_float(data, self.field_name, min_value=-params.MAX_FLOAT, max_value=params.MAX_FLOAT)
        except params.BadParam:
            self.fail("invalid")


class StrictCharField(serializers.CharField):
    """Text only: DRF's own CharField takes a number and makes it text."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field(
    {"oneOf": [{"type": "string", "pattern": "^[-a-zA-Z0-9_]*$", "maxLength": 100}, {"type": "integer", "minimum": 1}]}
)
class TeamRefField(serializers.CharField):
    """A team's id (a number or its digits) or slug; read by webapp.params.id_or_slug in permissions.py."""


class TeamSerializer(serializers.ModelSerializer):
    class Meta:
        model = Team
        fields = ["id", "slug", "name"]


class RefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


def _trial_of(run) -> Trial | None:
    # Read with the run (select_related("sweep_trial")): a run that is no trial costs no query either.
    try:
        return run.sweep_trial
    except Trial.DoesNotExist:
        return None


class RunListSerializer(serializers.ModelSerializer):
    """A run as the run table lists it (no hyperparameters, result or logs: see the detail)."""

    url = serializers.SerializerMethodField()
    team = TeamSerializer(read_only=True)
    dataset = RefSerializer(read_only=True)
    cluster = RefSerializer(read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    tags = serializers.ListField(child=serializers.CharField(), source="tag_list", read_only=True)
    terminal = serializers.BooleanField(
        source="is_terminal", read_only=True, help_text="The run has ended (SUCCEEDED, FAILED or CANCELLED)."
    )
    sweep = serializers.SerializerMethodField()
    trial = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = [
            "id",
            "url",
            "name",
            "team",
            "status",
            "terminal",
            "status_reason",
            "template",
            "input_mode",
            "dataset",
            "cluster",
            "num_executors",
            "executor_cores",
            "executor_memory_mb",
            "gpus_per_executor",
            "epochs",
            "batch_size",
            "learning_rate",
            "test_accuracy",
            "test_loss",
            "best_accuracy",
            "final_loss",
            "duration_s",
            "tags",
            "notes",
            "starred",
            "archived",
            "created_by",
            "created_at",
            "submitted_at",
            "started_at",
            "finished_at",
            "sweep",
            "trial",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, run) -> str:
        return _url(self.context.get("request"), "api:run-detail", run.pk)

    @extend_schema_field({"type": "integer", "nullable": True, "description": "The sweep this run is a trial of."})
    def get_sweep(self, run) -> int | None:
        trial = _trial_of(run)
        return trial.sweep_id if trial else None

    @extend_schema_field({"type": "integer", "nullable": True, "description": "Its trial number in that sweep."})
    def get_trial(self, run) -> int | None:
        trial = _trial_of(run)
        return trial.number if trial else None


class RunLinksSerializer(serializers.Serializer):
    metrics = serializers.URLField()
    logs = serializers.URLField()
    predictions = serializers.URLField()
    artifacts = serializers.URLField()
    cancel = serializers.URLField()
    page = serializers.URLField()


class RunSerializer(RunListSerializer):
    """One run with everything about it that a client may read (never its ingest token)."""

    queue_position = serializers.SerializerMethodField()
    queue_reason = serializers.SerializerMethodField()
    executors = serializers.SerializerMethodField()
    can_edit = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()
    result = serializers.SerializerMethodField()
    spark_ui_link = serializers.SerializerMethodField()
    spark_ui_kind = serializers.SerializerMethodField()

    class Meta(RunListSerializer.Meta):
        fields = [
            *RunListSerializer.Meta.fields,
            "status_detail",
            "hyperparameters",
            "queue_position",
            "queue_reason",
            "spark_app_id",
            "spark_ui_url",
            "spark_ui_link",
            "spark_ui_kind",
            "test_rows",
            "result",
            "executors",
            "can_edit",
            "links",
        ]
        read_only_fields = fields

    @extend_schema_field(
        {
            "type": "string",
            "nullable": True,
            "description": "The Spark UI to open (Run.spark_ui_link): the driver's live UI while the run is "
            "submitted or running, then the application's page on the cluster's History Server; null when "
            "neither exists. spark_ui_url is the driver's UI as recorded, dead once the run ended.",
        }
    )
    def get_spark_ui_link(self, run) -> str | None:
        ui = run.spark_ui_link()
        return ui.url if ui else None

    @extend_schema_field({"type": "string", "nullable": True, "enum": ["live", "history", None]})
    def get_spark_ui_kind(self, run) -> str | None:
        ui = run.spark_ui_link()
        return ui.kind if ui else None

    def get_queue_position(self, run) -> int | None:
        return run.queue_position()

    def get_queue_reason(self, run) -> str:
        return run.queue_reason if run.status == Run.Status.QUEUED else ""

    def get_executors(self, run) -> list[str]:
        return artifacts.executors(run)

    def get_can_edit(self, run) -> bool:
        request = self.context.get("request")
        return bool(request) and can_edit_run(request.user, run)

    @extend_schema_field(
        {
            "type": "object",
            "additionalProperties": {},
            "description": "What the job reported (result.json); `model` is the model's download URL "
            "(null until it is written), never a path on the server.",
        }
    )
    def get_result(self, run) -> dict:
        result = dict(run.result or {})
        if "model" in result:
            found = artifacts.file_stat(run, artifacts.model_path(run)) is not None
            result["model"] = _url(self.context.get("request"), "api:run-model", run.pk) if found else None
        return result

    @extend_schema_field(RunLinksSerializer)
    def get_links(self, run) -> dict:
        request = self.context.get("request")
        names = {
            "metrics": "api:run-metrics",
            "logs": "api:run-logs",
            "predictions": "api:run-predictions",
            "artifacts": "api:run-artifacts",
            "cancel": "api:run-cancel",
            "page": "run_detail",
        }
        return {key: _url(request, name, run.pk) for key, name in names.items()}


class RunFieldsSerializer(serializers.Serializer):
    """What a run request and a sweep request both name: the team, dataset, template, cluster and the
    resources of one run (a sweep's: of each of its trials)."""

    team = TeamRefField(
        required=False,
        allow_blank=True,
        help_text="Team id or slug; optional when you are in one team (or chose one in the browser).",
    )
    name = StrictCharField(
        max_length=200, required=False, allow_blank=True, default="", validators=[params.text_validator]
    )
    dataset = StrictIntegerField(min_value=1, max_value=MAX_INT, help_text="Id of a READY dataset of the team.")
    template = serializers.ChoiceField(choices=list(TEMPLATES), help_text="Template key, see /api/templates/.")
    hyperparameters = serializers.DictField(required=False, default=dict)
    cluster = StrictIntegerField(min_value=1, max_value=MAX_INT, help_text="Cluster id, see /api/clusters/.")
    num_executors = StrictIntegerField(min_value=1, max_value=MAX_INT, default=2)
    executor_cores = StrictIntegerField(min_value=1, max_value=MAX_INT, default=1)
    executor_memory_mb = StrictIntegerField(min_value=256, max_value=MAX_INT, default=2048)
    gpus_per_executor = StrictIntegerField(min_value=0, max_value=MAX_INT, default=0)
    input_mode = serializers.ChoiceField(choices=Run.InputMode.choices, default=Run.InputMode.TENSORFLOW)

    def validate_dataset(self, value):
        ds = Dataset.objects.for_user(self.context["request"].user).filter(pk=value).first()
        if ds is None:
            raise serializers.ValidationError("No such dataset.")
        return ds

    def validate_cluster(self, value):
        cluster = Cluster.objects.filter(pk=value).first()
        if cluster is None:
            raise serializers.ValidationError("No such cluster.")
        return cluster


class RunSubmitSerializer(RunFieldsSerializer):
    """A run request. Resource fields default to the run form's initial values; `hyperparameters`
    holds the template's values (missing ones take the template defaults, see /api/templates/)."""


# Run.set_tags' rule (webapp/runs/models.py normalize_tags) as the schema says it: blanks around a tag
# and empty ones are dropped, tags are compared in lower case.
_TAG = rf"[A-Za-z0-9][A-Za-z0-9_.:+-]{{0,{MAX_TAG_LENGTH - 1}}}"
TAGS_SCHEMA = {
    "oneOf": [
        {
            "type": "array",
            "maxItems": MAX_TAGS,
            "items": {"type": "string", "pattern": rf"^\s*({_TAG})?\s*$"},
        },
        {"type": "string", "pattern": rf"^[\s,]*({_TAG}([\s,]+|$))*$"},
    ]
}


@extend_schema_field(TAGS_SCHEMA)
class TagsField(serializers.Field):
    """A list of tags, or one string of them ("a, b c"); normalized and checked by Run.set_tags."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            return data
        if isinstance(data, list) and len(data) <= MAX_TAGS and all(isinstance(t, str) for t in data):
            return data
        raise serializers.ValidationError("A list of tags (strings), or one string of them.")

    def to_representation(self, value):
        return value


class RunEditSerializer(serializers.Serializer):
    """Any of these; what is left out stays as it is."""

    name = StrictCharField(
        required=False,
        trim_whitespace=False,
        max_length=Run._meta.get_field("name").max_length,
        validators=[params.name_validator],
    )
    tags = TagsField(required=False, help_text='A list of tags, or one string "a, b c". Replaces the run\'s tags.')
    notes = StrictCharField(
        required=False, allow_blank=True, trim_whitespace=False, max_length=100_000, validators=[params.note_validator]
    )
    starred = serializers.BooleanField(required=False)
    archived = serializers.BooleanField(required=False)


class LogQuerySerializer(serializers.Serializer):
    offset = StrictIntegerField(min_value=0, default=0, help_text="Byte offset to read from.")
    limit = StrictIntegerField(min_value=1, max_value=MAX_CHUNK, default=MAX_CHUNK, help_text="Bytes at most.")


class LogChunkSerializer(serializers.Serializer):
    source = serializers.CharField(help_text='"driver" or an executor id')
    stream = serializers.CharField(help_text="stdout or stderr (driver: its one log)")
    offset = serializers.IntegerField(help_text="Where this chunk starts.")
    next_offset = serializers.IntegerField(help_text="Ask for this offset next.")
    size = serializers.IntegerField(help_text="The log's size now, in bytes.")
    eof = serializers.BooleanField(help_text="This chunk reaches the current end of the log.")
    text = serializers.CharField(help_text="UTF-8 (undecodable bytes replaced).")


class LogFileSerializer(serializers.Serializer):
    source = serializers.CharField()
    stream = serializers.CharField()
    size = serializers.IntegerField()
    url = serializers.URLField()


class PredictionQuerySerializer(serializers.Serializer):
    page = StrictIntegerField(min_value=1, max_value=MAX_INT, default=1)
    size = StrictIntegerField(min_value=1, max_value=analysis.MAX_PER_PAGE, default=analysis.PER_PAGE)
    true = StrictIntegerField(
        required=False, min_value=0, max_value=MAX_INT, help_text="Only rows of this true class (index)."
    )
    pred = StrictIntegerField(
        required=False, min_value=0, max_value=MAX_INT, help_text="Only rows predicted as this class."
    )
    conf_min = StrictFloatField(required=False, min_value=0, max_value=1, help_text="Confidence at least.")
    conf_max = StrictFloatField(required=False, min_value=0, max_value=1, help_text="Confidence at most.")
    errors = serializers.BooleanField(required=False, help_text="1: misclassified rows only.")


class PredictionSerializer(serializers.Serializer):
    row_id = serializers.IntegerField()
    label = serializers.IntegerField()
    prediction = serializers.IntegerField()
    confidence = serializers.FloatField()
    label_name = serializers.CharField()
    prediction_name = serializers.CharField()
    correct = serializers.BooleanField()


class PredictionPageSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Rows matching the filters.")
    page = serializers.IntegerField()
    pages = serializers.IntegerField()
    size = serializers.IntegerField()
    ordered_by = serializers.CharField()
    results = PredictionSerializer(many=True)


class ArtifactSerializer(serializers.Serializer):
    name = serializers.CharField()
    size = serializers.IntegerField()
    url = serializers.URLField()


class ArtifactsSerializer(serializers.Serializer):
    model = ArtifactSerializer(allow_null=True)
    predictions_csv = ArtifactSerializer(allow_null=True)
    # The chief's TensorBoard event files as a tar.gz (size: the files' bytes before packing).
    tensorboard = ArtifactSerializer(allow_null=True)


class RunPageSerializer(serializers.Serializer):
    results = RunListSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)
    prev_cursor = serializers.CharField(allow_null=True)
    sort = serializers.CharField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)


class MetricsQuerySerializer(serializers.Serializer):
    names = StrictCharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text="Comma-separated metric names (" + ", ".join(sorted(metrics.ALLOWED_NAMES)) + "); all when absent.",
    )
    start = StrictFloatField(required=False, min_value=-X_LIMIT, max_value=X_LIMIT, help_text="Smallest x included.")
    end = StrictFloatField(required=False, min_value=-X_LIMIT, max_value=X_LIMIT, help_text="Largest x included.")
    max_points = StrictIntegerField(
        min_value=4, max_value=metrics.MAX_MAX_POINTS, default=metrics.DEFAULT_MAX_POINTS, help_text="Per series."
    )
    x = serializers.ChoiceField(
        choices=list(metrics.X_AXES), default="step", help_text="step (batches), epoch, or wall (seconds)."
    )

    def validate_names(self, value):
        names = sorted(set(value.split(","))) if value else []
        unknown = [n for n in names if n not in metrics.ALLOWED_NAMES]
        if unknown:
            known = ", ".join(sorted(metrics.ALLOWED_NAMES))
            raise serializers.ValidationError(f"Unknown metric {', '.join(unknown)[:100]}; known: {known}.")
        return names or None


class SeriesSerializer(serializers.Serializer):
    name = serializers.CharField()
    executor = serializers.CharField()
    count = serializers.IntegerField(help_text="Points stored in range.")
    downsampled = serializers.BooleanField()
    points = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField()), help_text="[x, y] pairs"
    )


class MetricsSerializer(serializers.Serializer):
    x = serializers.CharField()
    start = serializers.FloatField(allow_null=True)
    end = serializers.FloatField(allow_null=True)
    max_points = serializers.IntegerField()
    range = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    origin = serializers.FloatField(allow_null=True, help_text="x=wall: the epoch seconds x counts from.")
    last_id = serializers.IntegerField()
    series = SeriesSerializer(many=True)


class DatasetSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    team = TeamSerializer(read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    download = serializers.SerializerMethodField()

    class Meta:
        model = Dataset
        fields = [
            "id",
            "url",
            "name",
            "team",
            "status",
            "status_reason",
            "layout",
            "shape",
            "num_classes",
            "class_names",
            "class_counts",
            "train_rows",
            "test_rows",
            "source_format",
            "original_name",
            "size_bytes",
            "split_mode",
            "created_by",
            "created_at",
            "converted_at",
            "download",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, ds) -> str:
        return _url(self.context.get("request"), "api:dataset-detail", ds.pk)

    @extend_schema_field(OpenApiTypes.URI)
    def get_download(self, ds) -> str:
        return _url(self.context.get("request"), "dataset_download", ds.pk)


class DatasetUploadSerializer(serializers.Serializer):
    """The multipart upload, as documented in the schema. The values are checked by the upload page's
    own form (webapp/datasets/forms.py UploadForm), so both refuse the same things with the same words."""

    team = TeamRefField(required=False, allow_blank=True, help_text="Team id or slug (see submitting runs).")
    name = StrictCharField(max_length=200, validators=[params.name_validator])
    file = serializers.FileField(help_text="NPZ (arrays x, y), CSV/TSV/Parquet (a label column) or a ZIP of images.")
    # (empty = the default, as the form takes them; their lengths are the form's)
    label_column = StrictCharField(required=False, allow_blank=True, max_length=100, default="label")
    layout = serializers.ChoiceField(
        choices=Dataset.UPLOAD_LAYOUTS,
        required=False,
        default="auto",
        help_text="auto (default): a table for CSV/TSV/Parquet without an image shape, images otherwise",
    )
    shape = StrictCharField(
        required=False, allow_blank=True, max_length=40, help_text="e.g. 28x28, 28x28x3, 20x3; empty = inferred"
    )
    x_key = StrictCharField(required=False, allow_blank=True, max_length=100, default="x")
    y_key = StrictCharField(required=False, allow_blank=True, max_length=100, default="y")
    image_size = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=20,
        help_text="ZIP of images: height x width, e.g. 64x64; empty = the most common size in the archive",
    )
    test_fraction = StrictFloatField(required=False, min_value=0.01, max_value=0.9, default=DEFAULT_TEST_FRACTION)
    test_file = serializers.FileField(required=False, help_text="The test split as its own file.")


class ClusterSerializer(serializers.ModelSerializer):
    limits = serializers.CharField(source="limits_text", read_only=True)

    class Meta:
        model = Cluster
        fields = [
            "id",
            "name",
            "kind",
            "max_executors",
            "max_executor_cores",
            "max_executor_memory_mb",
            "max_gpus_per_executor",
            "limits",
        ]
        read_only_fields = fields


class TemplateParamSerializer(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=["int", "float", "str", "choice", "ref"])
    default = serializers.JSONField()
    help = serializers.CharField()
    min = serializers.FloatField(required=False, help_text="int and float params")
    max = serializers.FloatField(required=False, help_text="int and float params")
    choices = serializers.ListField(child=serializers.CharField(), required=False)
    refs = serializers.ListField(child=serializers.CharField(), required=False, help_text="run, file, app")


class TemplateSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    description = serializers.CharField()
    layouts = serializers.ListField(child=serializers.CharField())
    params = TemplateParamSerializer(many=True)


# ---------------------------------------------------------------- sweeps

SPACE_SCHEMA = {
    "type": "object",
    "description": "One entry per hyperparameter (docs/sweeps.md): "
    '{"type": "fixed", "value": 5}, {"type": "choice", "values": ["adam", "sgd"]} or '
    '{"type": "range", "low": 0.0001, "high": 0.1, "log": true} (int ranges: "step"; a grid over a '
    'float range: "points"). At least one entry must vary.',
    "additionalProperties": {
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {"type": "string", "enum": list(search_space.ENTRY_TYPES)},
            "value": {},
            "values": {"type": "array", "minItems": 1, "maxItems": search_space.MAX_CHOICES, "items": {}},
            "low": {},
            "high": {},
            "log": {"type": "boolean"},
            "step": {},
            "points": {"type": "integer", "minimum": 2, "maximum": search_space.MAX_GRID_POINTS},
        },
    },
}


@extend_schema_field(SPACE_SCHEMA)
class SpaceField(serializers.DictField):
    """The search space: an object, its entries checked against the template by sweeps.space.clean."""


class SweepSubmitSerializer(RunFieldsSerializer):
    """A sweep request: a run request's fields (each trial's dataset, template, cluster, resources;
    `hyperparameters` are the fixed ones) and the search. Checked like a run request and then by
    webapp/sweeps/services.create_sweep; refusals name the field (`space.<hyperparameter>`, `parallel`)."""

    space = SpaceField()
    strategy = serializers.ChoiceField(choices=Sweep.Strategy.choices, default=Sweep.Strategy.RANDOM)
    objective = serializers.ChoiceField(choices=Sweep.Objective.choices, default=Sweep.Objective.VAL_ACCURACY)
    pruner = serializers.ChoiceField(choices=Sweep.Pruner.choices, default=Sweep.Pruner.NONE)
    pruner_startup_trials = StrictIntegerField(
        min_value=0,
        max_value=search_space.MAX_TRIALS,
        default=2,
        help_text="Median: trials that finish before any is pruned.",
    )
    pruner_warmup_epochs = StrictIntegerField(
        min_value=0, max_value=500, default=1, help_text="Epochs never pruned in (ASHA: its first rung)."
    )
    pruner_reduction_factor = StrictIntegerField(
        min_value=sweep_services.MIN_REDUCTION_FACTOR,
        max_value=sweep_services.MAX_REDUCTION_FACTOR,
        default=3,
        help_text="ASHA: each rung keeps the best 1 in this many trials (rungs at warm-up × factor^k epochs).",
    )
    max_trials = StrictIntegerField(min_value=1, max_value=search_space.MAX_TRIALS, default=10)
    parallel = StrictIntegerField(
        min_value=1, max_value=search_space.MAX_TRIALS, default=2, help_text="Trials at once."
    )
    seed = StrictIntegerField(min_value=0, max_value=MAX_INT, default=42)


class TrialCountsSerializer(serializers.Serializer):
    RUNNING = serializers.IntegerField()
    COMPLETE = serializers.IntegerField()
    PRUNED = serializers.IntegerField()
    FAIL = serializers.IntegerField()


class BestTrialSerializer(serializers.ModelSerializer):
    run = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    test_accuracy = serializers.SerializerMethodField(help_text="Its run's accuracy on the test split.")

    class Meta:
        model = Trial
        fields = ["number", "value", "params", "run", "test_accuracy"]
        read_only_fields = fields

    def get_test_accuracy(self, trial) -> float | None:
        return trial.run.test_accuracy if trial.run else None


class SweepLinksSerializer(serializers.Serializer):
    trials = serializers.URLField()
    cancel = serializers.URLField()


class SweepSerializer(serializers.ModelSerializer):
    """A sweep as its list shows it."""

    url = serializers.SerializerMethodField()
    team = TeamSerializer(read_only=True)
    dataset = RefSerializer(read_only=True)
    cluster = RefSerializer(read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    terminal = serializers.BooleanField(source="is_terminal", read_only=True)
    hyperparameters = serializers.JSONField(
        source="base_hyperparameters", read_only=True, help_text="What every trial starts from."
    )
    budget = serializers.SerializerMethodField(help_text="Trials the sweep makes: max_trials, or a smaller grid.")
    trial_counts = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()

    class Meta:
        model = Sweep
        fields = [
            "id",
            "url",
            "name",
            "team",
            "status",
            "terminal",
            "status_reason",
            "waiting_reason",
            "template",
            "dataset",
            "cluster",
            "space",
            "hyperparameters",
            "strategy",
            "objective",
            "pruner",
            "pruner_startup_trials",
            "pruner_warmup_epochs",
            "pruner_reduction_factor",
            "max_trials",
            "budget",
            "parallel",
            "seed",
            "num_executors",
            "executor_cores",
            "executor_memory_mb",
            "gpus_per_executor",
            "input_mode",
            "trial_counts",
            "created_by",
            "created_at",
            "finished_at",
            "links",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, sweep) -> str:
        return _url(self.context.get("request"), "api:sweep-detail", sweep.pk)

    def get_budget(self, sweep) -> int:
        return sweep_services.budget(sweep, sweep.strategy, sweep.max_trials)

    @extend_schema_field(TrialCountsSerializer)
    def get_trial_counts(self, sweep) -> dict:
        return sweep_services.trial_counts(sweep)

    @extend_schema_field(SweepLinksSerializer)
    def get_links(self, sweep) -> dict:
        request = self.context.get("request")
        names = {"trials": "api:sweep-trials", "cancel": "api:sweep-cancel"}
        return {key: _url(request, name, sweep.pk) for key, name in names.items()}


class SweepDetailSerializer(SweepSerializer):
    """One sweep, with its best trial so far."""

    best_trial = serializers.SerializerMethodField(
        help_text="The finished trial with the best objective (pruned trials never count); null until one finished."
    )

    class Meta(SweepSerializer.Meta):
        fields = [*SweepSerializer.Meta.fields, "best_trial"]
        read_only_fields = fields

    @extend_schema_field(BestTrialSerializer(allow_null=True))
    def get_best_trial(self, sweep) -> dict | None:
        best = sweep_services.best_finished_trial(sweep)
        return BestTrialSerializer(best).data if best else None


class TrialEpochSerializer(serializers.ModelSerializer):
    class Meta:
        model = TrialEpoch
        fields = ["epoch", "value", "decision"]
        read_only_fields = fields


class TrialSerializer(serializers.ModelSerializer):
    """One trial: what Optuna chose, its objective, how far it ran, and the pruner's word per epoch."""

    run = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    run_status = serializers.CharField(read_only=True, allow_null=True, help_text="Its run's status.")
    epochs = TrialEpochSerializer(many=True, read_only=True)

    class Meta:
        model = Trial
        fields = [
            "number",
            "status",
            "status_reason",
            "params",
            "value",
            "epochs_run",
            "pruned_at_epoch",
            "run",
            "run_status",
            "epochs",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


# ---------------------------------------------------------------- the model registry


class AliasRefSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField()


class RegisteredModelSerializer(serializers.ModelSerializer):
    """A registered model (annotated by registry.services.models_with_summary)."""

    url = serializers.SerializerMethodField()
    team = TeamSerializer(read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    latest_version = serializers.IntegerField(read_only=True, allow_null=True, help_text="null: no version yet.")
    version_count = serializers.IntegerField(read_only=True)
    aliases = serializers.SerializerMethodField()
    versions = serializers.SerializerMethodField()

    class Meta:
        model = RegisteredModel
        fields = [
            "name",
            "url",
            "team",
            "description",
            "latest_version",
            "version_count",
            "aliases",
            "created_by",
            "created_at",
            "updated_at",
            "versions",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, model) -> str:
        return _url(self.context.get("request"), "api:registry-model", model.name)

    @extend_schema_field(AliasRefSerializer(many=True))
    def get_aliases(self, model) -> list:
        return [{"name": a.name, "version": a.version.version} for a in model.aliases.all()]

    @extend_schema_field(OpenApiTypes.URI)
    def get_versions(self, model) -> str:
        return _url(self.context.get("request"), "api:registry-versions", model.name)


class VersionDatasetSerializer(serializers.Serializer):
    id = serializers.IntegerField(allow_null=True, help_text="null once the dataset is deleted.")
    name = serializers.CharField()
    sha256 = serializers.CharField(help_text="Of its train.parquet then test.parquet; '' if unknown.")


METRICS_SCHEMA = {
    "type": "object",
    "additionalProperties": {"type": "number"},
    "description": "From the run: test_accuracy, test_loss, test_rows, val_accuracy (best), val_loss (lowest), "
    "best_accuracy, final_loss, epochs_run, ... (those it reported); {} for an uploaded file.",
}


class ModelVersionSerializer(serializers.ModelSerializer):
    """One version: where it came from, what it was trained on, its files."""

    url = serializers.SerializerMethodField()
    model = serializers.CharField(source="model.name", read_only=True)
    run = serializers.PrimaryKeyRelatedField(source="source_run", read_only=True, allow_null=True)
    modelfile = serializers.PrimaryKeyRelatedField(source="source_modelfile", read_only=True, allow_null=True)
    metrics = serializers.SerializerMethodField()
    dataset = serializers.SerializerMethodField()
    input_shape = serializers.ListField(child=serializers.IntegerField(), read_only=True)
    class_names = serializers.ListField(child=serializers.CharField(), read_only=True)
    aliases = serializers.SerializerMethodField()
    archived_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    archive = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "model",
            "version",
            "url",
            "description",
            "source",
            "run",
            "modelfile",
            "source_label",
            "template",
            "hyperparameters",
            "metrics",
            "dataset",
            "layout",
            "input_shape",
            "class_names",
            "preprocessing",
            "entry",
            "size_bytes",
            "aliases",
            "archived",
            "archived_at",
            "archived_by",
            "created_by",
            "created_at",
            "archive",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, v) -> str:
        return _url(self.context.get("request"), "api:registry-version", v.model.name, v.version)

    @extend_schema_field(METRICS_SCHEMA)
    def get_metrics(self, v) -> dict:
        return v.metrics if isinstance(v.metrics, dict) else {}

    @extend_schema_field(VersionDatasetSerializer(allow_null=True))
    def get_dataset(self, v) -> dict | None:
        if not v.dataset_name:
            return None
        return {"id": v.dataset_id, "name": v.dataset_name, "sha256": v.dataset_hash}

    def get_aliases(self, v) -> list[str]:
        return sorted(a.name for a in v.aliases.all())

    @extend_schema_field(OpenApiTypes.URI)
    def get_archive(self, v) -> str:
        return _url(self.context.get("request"), "api:registry-archive", v.model.name, v.version)


class RegisterSerializer(serializers.Serializer):
    """What to register as the model's next version: a succeeded run's model or a READY model file."""

    team = TeamRefField(
        required=False, allow_blank=True, help_text="Team id or slug; when given, the run's or file's team."
    )
    run = StrictIntegerField(required=False, min_value=1, max_value=params.MAX_ID, help_text="A SUCCEEDED run.")
    modelfile = StrictIntegerField(
        required=False, min_value=1, max_value=params.MAX_ID, help_text="A READY uploaded model file."
    )
    description = StrictCharField(
        required=False, allow_blank=True, default="", max_length=MAX_DESCRIPTION, validators=[params.note_validator]
    )
    model_description = StrictCharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=MAX_DESCRIPTION,
        validators=[params.note_validator],
        help_text="The model's, when this makes it.",
    )


class AliasSerializer(serializers.Serializer):
    model = serializers.CharField(source="model.name")
    alias = serializers.CharField(source="name")
    version = serializers.IntegerField(source="version.version")
    updated_by = serializers.CharField(source="updated_by.username", default=None, allow_null=True)
    updated_at = serializers.DateTimeField()


class AliasSetSerializer(serializers.Serializer):
    version = StrictIntegerField(min_value=1, max_value=MAX_VERSION, help_text="The version it points at from now.")
    expected_version = StrictIntegerField(
        required=False,
        min_value=0,
        max_value=MAX_VERSION,
        help_text="Move only if the alias points at this version now (0: only if it is not set yet); else 409.",
    )


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
