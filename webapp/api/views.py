"""The REST API's endpoints (docs/api.md). Thin: every rule lives in a service (create_run,
lifecycle.cancel, history.services edits, create_dataset) or in permissions.py."""

from collections.abc import Mapping
from urllib.parse import urlencode

from django.conf import settings
from django.db import transaction
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from webapp import params
from webapp.catalog.registry import schema as template_schema
from webapp.clusters.models import Cluster
from webapp.datasets.forms import UploadForm
from webapp.datasets.ingest import DatasetError
from webapp.datasets.models import Dataset
from webapp.datasets.uploads import LimitedUploadHandler, declared_too_large, too_large_message
from webapp.history import filters, table
from webapp.history.services import TABLE_DEFER, EditError, set_archived, set_starred, update_run
from webapp.modelfiles.models import ModelFile
from webapp.monitoring import services as monitoring
from webapp.monitoring import tensorboard
from webapp.registry import services as registry
from webapp.registry.models import Alias, RegisteredModel
from webapp.runs import analysis, artifacts, lifecycle, metrics
from webapp.runs.errors import RunRequestError
from webapp.runs.models import Run
from webapp.runs.services import create_run
from webapp.runs.states import IllegalTransition, StaleStatus
from webapp.sweeps import services as sweep_services
from webapp.sweeps.services import SweepRequestError
from webapp.sweeps.states import SweepStatus

from . import permissions as perms
from . import serializers as s
from .parsers import JSONParser

NOT_FOUND = OpenApiResponse(description="Not one of your teams' objects (or no such file).")
FORBIDDEN = OpenApiResponse(description="Your role does not allow this.")
BAD = OpenApiResponse(description='Bad input: {"field": ["message", ...], ...}')
BINARY = OpenApiTypes.BINARY
PAST_THE_END = OpenApiResponse(description="A page past the last one.")


def _bounded(low: int, high: int, blank_is_default: bool = False) -> dict:
    """An integer parameter's schema with its range, so clients (and the fuzz test) know it; where an
    empty value means the default (as the browser's forms send it), the schema says so."""
    schema = {"type": "integer", "minimum": low, "maximum": high}
    return {"oneOf": [schema, {"type": "string", "maxLength": 0}]} if blank_is_default else schema


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The run changed meanwhile."


class BadGateway(APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_detail = "The cluster did not answer."


def _bad(field: str, message: str) -> ValidationError:
    return ValidationError({field or "non_field_errors": [message]})


def _query(serializer_class, request):
    ser = serializer_class(data=request.query_params)
    ser.is_valid(raise_exception=True)
    return ser.validated_data


def _body(request) -> Mapping:
    if not isinstance(request.data, Mapping):
        raise _bad("non_field_errors", "Send a JSON object.")
    return request.data


def _request_error(exc: RunRequestError) -> ValidationError:
    """A refused run or sweep request as the API's 400: each field with its service's message."""
    return ValidationError({k: [str(v)] for k, v in exc.errors.items()})


def _filter_error(exc: filters.FilterError) -> ValidationError:
    message = exc.message
    if exc.param and message.startswith(f"{exc.param}: "):
        message = message[len(exc.param) + 2 :]
    return _bad(exc.param, message)


def _status_filter(qs, query, statuses):
    """`qs` narrowed to the `status` parameter's values (comma-separated or repeated, any case)."""
    try:
        wanted = filters.list_param(query, "status")
    except filters.FilterError as exc:
        raise _filter_error(exc) from None
    if not wanted:
        return qs
    unknown = [w for w in wanted if w.upper() not in statuses]
    if unknown:
        raise _bad("status", f"Unknown status {unknown[0][:30]!r}; one of {', '.join(statuses)}.")
    return qs.filter(status__in=[w.upper() for w in wanted])


class NumberedPages(PageNumberPagination):
    """Pages by number; `page` and `size` are parsed strictly (400), a page past the end is 404."""

    page_size = 100
    page_size_query_param = "size"
    max_page_size = 500
    max_page = params.MAX_INT32

    def get_page_size(self, request):
        q = request.query_params
        return params.int_param(
            q, "size", min_value=1, max_value=self.max_page_size, default=self.page_size, blank_is_absent=False
        )

    def get_page_number(self, request, paginator):
        q = request.query_params
        return params.int_param(q, "page", min_value=1, max_value=self.max_page, default=1, blank_is_absent=False)


def _page_params(what: str) -> list[OpenApiParameter]:
    return [
        OpenApiParameter("page", _bounded(1, NumberedPages.max_page), description="Page number (default 1)."),
        OpenApiParameter(
            "size",
            _bounded(1, NumberedPages.max_page_size),
            description=f"{what} per page (default {NumberedPages.page_size}).",
        ),
    ]


def _paged(view, request, queryset, serializer_class) -> Response:
    """One page of `queryset` (view.pagination_class): {"count", "next", "previous", "results"}."""
    pager = view.pagination_class()
    items = pager.paginate_queryset(queryset, request, view=view)
    return pager.get_paginated_response(serializer_class(items, many=True, context={"request": request}).data)


TEAM_PARAM = OpenApiParameter("team", str, description="A team id or slug (default: all your teams).")


# ---------------------------------------------------------------- runs

RUN_FILTERS = [
    OpenApiParameter("team", str, description="A team id or slug (default: all your teams)."),
    OpenApiParameter("status", str, description="Statuses, comma-separated: any of them."),
    OpenApiParameter("template", str, description="Template keys, comma-separated."),
    OpenApiParameter("dataset", str, description="Dataset ids, comma-separated."),
    OpenApiParameter("submitter", str, description="Usernames, comma-separated."),
    OpenApiParameter("tag", str, description="Tags, comma-separated: runs carrying all of them."),
    OpenApiParameter("since", str, description="Created at or after (YYYY-MM-DD or ISO date-time)."),
    OpenApiParameter("until", str, description="Created at or before (a date includes its day)."),
    OpenApiParameter("q", str, description="Words that must occur in the name, notes or tags."),
    OpenApiParameter("expr", str, description=filters.EXPR_HELP),
    OpenApiParameter("archived", str, description="0 (default): hide archived; 1: include them; only."),
    OpenApiParameter("starred", str, description="1: starred runs only."),
    OpenApiParameter("sort", str, description="A column key, - for descending (default -created)."),
    OpenApiParameter("cursor", str, description="next_cursor or prev_cursor of an earlier page."),
    OpenApiParameter(
        "size",
        _bounded(1, table.MAX_SIZE, blank_is_default=True),
        description=f"Runs per page, 1 to {table.MAX_SIZE} (default {table.DEFAULT_SIZE}, also when empty).",
    ),
]


def _cursor_url(request, cursor):
    if cursor is None:
        return None
    params = request.query_params.copy()
    params["cursor"] = cursor
    return request.build_absolute_uri(f"{request.path}?{urlencode(params, doseq=True)}")


class RunListView(APIView):
    parser_classes = [JSONParser]

    @extend_schema(operation_id="runs_list", parameters=RUN_FILTERS, responses={200: s.RunPageSerializer, 400: BAD})
    def get(self, request):
        """Your teams' runs, filtered and sorted like the run table, paged by cursor."""
        params = request.query_params
        teams = perms.teams_param(request.user, params.get("team"))
        qs = (
            Run.objects.filter(team__in=teams)
            .select_related(*perms.RUN_RELATED)
            .defer(*TABLE_DEFER, *perms.RUN_TRIAL_DEFER)
        )
        try:
            qs = filters.filter_runs(qs, params)
            sort = filters.text_param(params, "sort") or table.DEFAULT_SORT
            page = table.page(qs, sort, filters.text_param(params, "cursor") or None, table.page_size(params))
        except filters.FilterError as exc:
            raise _filter_error(exc) from None
        return Response(
            {
                "results": s.RunListSerializer(page.items, many=True, context={"request": request}).data,
                "next_cursor": page.next_cursor,
                "prev_cursor": page.prev_cursor,
                "sort": page.sort,
                "next": _cursor_url(request, page.next_cursor),
                "previous": _cursor_url(request, page.prev_cursor),
            }
        )

    @extend_schema(
        operation_id="runs_submit",
        request=s.RunSubmitSerializer,
        responses={201: s.RunSerializer, 400: BAD, 403: FORBIDDEN},
    )
    def post(self, request):
        """Submit a run: checked like the New run form (schema, dataset, limits, quota, the live cluster);
        accepted runs are QUEUED and handed to the queue."""
        data = _body(request)
        team = perms.write_team(request, data.get("team"))
        perms.require_submit(request.user, team, "submit runs")
        ser = s.RunSubmitSerializer(data=data, context={"request": request})
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        try:
            run = create_run(
                team=team,
                user=request.user,
                name=d["name"].strip(),
                dataset=d["dataset"],
                template=d["template"],
                hyperparameters=d["hyperparameters"],
                input_mode=d["input_mode"],
                cluster=d["cluster"],
                num_executors=d["num_executors"],
                executor_cores=d["executor_cores"],
                executor_memory_mb=d["executor_memory_mb"],
                gpus_per_executor=d["gpus_per_executor"],
            )
        except RunRequestError as exc:
            raise _request_error(exc) from None
        run = perms.team_run(request.user, run.pk)
        body = s.RunSerializer(run, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": body["url"]})


class RunDetailView(APIView):
    parser_classes = [JSONParser]

    @extend_schema(operation_id="runs_retrieve", responses={200: s.RunSerializer, 404: NOT_FOUND})
    def get(self, request, pk):
        run = perms.team_run(request.user, pk)
        return Response(s.RunSerializer(run, context={"request": request}).data)

    @extend_schema(
        operation_id="runs_edit",
        request=s.RunEditSerializer,
        responses={200: s.RunSerializer, 400: BAD, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def patch(self, request, pk):
        """Rename, tag, annotate, star or archive a run (owners/admins: any run; members: their own)."""
        run = perms.team_run(request.user, pk)
        perms.require_edit(request.user, run)
        ser = s.RunEditSerializer(data=_body(request))
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        with transaction.atomic():
            for field in ("name", "tags", "notes"):
                if field in d:
                    try:
                        update_run(request.user, run, **{field: d[field]})
                    except EditError as exc:
                        raise _bad(field, str(exc)) from None
            if "starred" in d:
                set_starred(request.user, run, d["starred"])
            if "archived" in d:
                try:
                    set_archived(request.user, run, d["archived"])
                except EditError as exc:
                    raise _bad("archived", str(exc)) from None
        run = perms.team_run(request.user, pk)
        return Response(s.RunSerializer(run, context={"request": request}).data)


class RunCancelView(APIView):
    @extend_schema(
        operation_id="runs_cancel",
        request=None,
        responses={
            200: s.RunSerializer,
            403: FORBIDDEN,
            404: NOT_FOUND,
            409: OpenApiResponse(description="The run has already ended."),
        },
    )
    def post(self, request, pk):
        """Cancel a run: recorded at once; a submitted or running one's driver and application are
        then stopped by the worker on the driver's host."""
        run = perms.team_run(request.user, pk)
        perms.require_cancel(request.user, run)
        if run.is_terminal:
            raise Conflict(f"Run {run.pk} already ended ({run.status}).")
        try:
            lifecycle.cancel(run, by=request.user.username)
        except (StaleStatus, IllegalTransition):
            run.refresh_from_db()
            raise Conflict(f"Run {run.pk} is now {run.status}.") from None
        run = perms.team_run(request.user, pk)
        return Response(s.RunSerializer(run, context={"request": request}).data)


class RunMetricsView(APIView):
    @extend_schema(
        operation_id="runs_metrics",
        parameters=[
            s.MetricsQuerySerializer,
            OpenApiParameter(
                "names",
                {"type": "array", "items": {"type": "string", "enum": sorted(metrics.ALLOWED_NAMES)}},
                style="form",
                explode=False,
                description="Metric names, comma-separated; all when absent.",
            ),
        ],
        responses={200: s.MetricsSerializer, 400: BAD, 404: NOT_FOUND},
    )
    def get(self, request, pk):
        """The run's metric series (one per metric and executor), downsampled to max_points each."""
        run = perms.team_run(request.user, pk)
        q = _query(s.MetricsQuerySerializer, request)
        try:
            data = metrics.series(
                run,
                names=q.get("names"),
                start=q.get("start"),
                end=q.get("end"),
                max_points=q["max_points"],
                x=q["x"],
            )
        except metrics.SeriesError as exc:
            raise _bad("non_field_errors", str(exc)) from None
        return Response(data)


def _log_files(request, run) -> list[dict]:
    found = [("driver", "driver")] + [(e, st) for e in artifacts.executors(run) for st in artifacts.LOG_STREAMS]
    out = []
    for source, stream in found:
        st = artifacts.file_stat(run, artifacts.log_path(run, source, stream))
        if st is None:
            continue
        args = [run.pk, source] if source == "driver" else [run.pk, source, stream]
        name = "api:run-log-driver" if source == "driver" else "api:run-log"
        url = reverse(name, args=args, request=request)
        out.append({"source": source, "stream": stream, "size": st.st_size, "url": url})
    return out


class RunLogsView(APIView):
    @extend_schema(operation_id="runs_logs", responses={200: s.LogFileSerializer(many=True), 404: NOT_FOUND})
    def get(self, request, pk):
        """The run's logs that exist so far: the driver's, and each executor's stdout and stderr."""
        run = perms.team_run(request.user, pk)
        return Response(_log_files(request, run))


class RunLogView(APIView):
    @extend_schema(
        operation_id="runs_log_read",
        parameters=[s.LogQuerySerializer],
        responses={200: s.LogChunkSerializer, 400: BAD, 404: NOT_FOUND},
    )
    def get(self, request, pk, source, stream="stderr"):
        """A chunk of one log from a byte offset; poll with next_offset to follow a running run."""
        run = perms.team_run(request.user, pk)
        q = _query(s.LogQuerySerializer, request)
        path = artifacts.log_path(run, source, stream)
        if artifacts.file_stat(run, path) is None:
            raise NotFound("No such log.")
        text, nxt, size = artifacts.read_chunk(run, path, q["offset"], q["limit"])
        return Response(
            {
                "source": source,
                "stream": "driver" if source == "driver" else stream,
                "offset": min(q["offset"], size),
                "next_offset": nxt,
                "size": size,
                "eof": nxt >= size,
                "text": text,
            }
        )


class RunDriverLogView(RunLogView):
    @extend_schema(
        operation_id="runs_driver_log_read",
        parameters=[s.LogQuerySerializer],
        responses={200: s.LogChunkSerializer, 400: BAD, 404: NOT_FOUND},
    )
    def get(self, request, pk, source):
        """A chunk of the driver's log (source "driver"; an executor id reads its stderr)."""
        return super().get(request, pk, source)


class RunPredictionsView(APIView):
    @extend_schema(
        operation_id="runs_predictions",
        parameters=[s.PredictionQuerySerializer],
        responses={200: s.PredictionPageSerializer, 400: BAD, 404: NOT_FOUND},
    )
    def get(self, request, pk):
        """The held-out predictions, a page at a time, filtered like the predictions page (count 0 until
        the run has written them; a page past the end gives the last one)."""
        run = perms.team_run(request.user, pk)
        q = _query(s.PredictionQuerySerializer, request)
        wanted, problems = analysis.Filters.from_query(request.query_params, len(analysis.classes(run)))
        if problems:
            raise _bad("non_field_errors", "; ".join(problems))
        try:
            page = analysis.prediction_page(run, wanted, q["page"], q["size"])
        except (OSError, ValueError) as exc:  # an unreadable predictions file (pyarrow's errors are these)
            raise Conflict(f"The predictions could not be read: {exc}") from None
        return Response(
            {
                "count": page.total,
                "page": page.page,
                "pages": page.pages,
                "size": page.per_page,
                "ordered_by": page.ordered_by,
                "results": analysis.named_rows(page.rows, run.dataset.class_names),
            }
        )


class RunAnalysisView(APIView):
    @extend_schema(
        operation_id="runs_analysis",
        responses={200: OpenApiTypes.OBJECT, 404: NOT_FOUND, 409: OpenApiResponse(description="Unreadable.")},
    )
    def get(self, request, pk):
        """The prediction analysis: accuracy, per-class precision/recall/F1, the confusion matrix."""
        run = perms.team_run(request.user, pk)
        if not analysis.has_predictions(run):
            raise NotFound("The run has written no predictions (yet).")
        try:
            data = analysis.as_json(run)
        except (OSError, ValueError) as exc:
            raise Conflict(f"The predictions could not be analysed: {exc}") from None
        if data is None:
            raise NotFound("The run has written no predictions (yet).")
        return Response(data)


def _artifact(request, name, run, path):
    st = artifacts.file_stat(run, path)
    if st is None:
        return None
    return {"name": path.name, "size": st.st_size, "url": reverse(name, args=[run.pk], request=request)}


class RunArtifactsView(APIView):
    @extend_schema(operation_id="runs_artifacts", responses={200: s.ArtifactsSerializer, 404: NOT_FOUND})
    def get(self, request, pk):
        """Which of the run's files can be downloaded (null: not written, or not yet)."""
        run = perms.team_run(request.user, pk)
        return Response(
            {
                "model": _artifact(request, "api:run-model", run, artifacts.model_path(run)),
                "predictions_csv": _artifact(request, "api:run-predictions-csv", run, artifacts.predictions_csv(run)),
                "tensorboard": _tensorboard_artifact(request, run),
            }
        )


def _tensorboard_artifact(request, run):
    if tensorboard.tensorboard_dir(run) is None:
        return None
    url = reverse("api:run-tensorboard", args=[run.pk], request=request)
    return {"name": f"run{run.pk}-tensorboard.tar.gz", "size": tensorboard.event_bytes(run), "url": url}


class RunResourcesView(APIView):
    @extend_schema(operation_id="runs_resources", responses={200: OpenApiTypes.OBJECT, 404: NOT_FOUND})
    def get(self, request, pk):
        """Per-executor resource samples (cores busy, memory, GC share) and the progress/ETA, as the
        run page's Resources section shows them (docs/monitoring.md)."""
        run = perms.team_run(request.user, pk)
        data = {"status": run.status, "terminal": run.is_terminal, **monitoring.series(run)}
        return Response({**data, "progress": monitoring.eta(run)})


class DownloadView(APIView):
    """A file download; errors still answer JSON whatever the Accept header asks for."""

    def perform_content_negotiation(self, request, force=False):
        return super().perform_content_negotiation(request, force=True)

    def send(self, run, path, filename):
        try:
            fh = artifacts.open_file(run, path)  # refuses a link planted in the run dir, like a missing file
        except OSError:
            raise NotFound("Not written (yet).") from None
        return FileResponse(fh, as_attachment=True, filename=filename)


class RunModelView(DownloadView):
    @extend_schema(
        operation_id="runs_model_download", responses={(200, "application/octet-stream"): BINARY, 404: NOT_FOUND}
    )
    def get(self, request, pk):
        """The exported model: model.keras, or for a LogisticRegression head model.zip."""
        run = perms.team_run(request.user, pk)
        path = artifacts.model_path(run)
        return self.send(run, path, f"run{run.pk}-{path.name}")


class RunPredictionsCsvView(DownloadView):
    @extend_schema(operation_id="runs_predictions_csv", responses={(200, "text/csv"): BINARY, 404: NOT_FOUND})
    def get(self, request, pk):
        """All predictions as CSV: row_id, label, prediction, confidence."""
        run = perms.team_run(request.user, pk)
        return self.send(run, artifacts.predictions_csv(run), f"run{run.pk}-predictions.csv")


class RunTensorboardView(DownloadView):
    @extend_schema(
        operation_id="runs_tensorboard_download",
        responses={(200, "application/gzip"): BINARY, 404: NOT_FOUND},
    )
    def get(self, request, pk):
        """The chief's TensorBoard event files as run<id>-tensorboard.tar.gz (`tensorboard --logdir`)."""
        run = perms.team_run(request.user, pk)
        if tensorboard.tensorboard_dir(run) is None:
            raise NotFound("Not written (yet).")
        name = f"run{run.pk}-tensorboard.tar.gz"
        return FileResponse(
            tensorboard.archive(run), as_attachment=True, filename=name, content_type="application/gzip"
        )


# ---------------------------------------------------------------- sweeps


class SweepListView(APIView):
    parser_classes = [JSONParser]
    pagination_class = NumberedPages

    @extend_schema(
        operation_id="sweeps_list",
        parameters=[
            TEAM_PARAM,
            OpenApiParameter("status", str, description="Statuses, comma-separated (RUNNING, SUCCEEDED, ...)."),
            *_page_params("Sweeps"),
        ],
        responses={200: s.SweepSerializer(many=True), 400: BAD, 404: PAST_THE_END},
    )
    def get(self, request):
        """Your teams' sweeps, newest first, with their trials per state."""
        teams = perms.teams_param(request.user, request.query_params.get("team"))
        # Ordered here: a query that counts (the trial counts) does not take Meta.ordering.
        qs = perms.visible_sweeps(request.user).filter(team__in=teams).order_by("-created_at", "-id")
        qs = _status_filter(qs, request.query_params, SweepStatus.values)
        return _paged(self, request, qs, s.SweepSerializer)

    @extend_schema(
        operation_id="sweeps_create",
        request=s.SweepSubmitSerializer,
        responses={201: s.SweepDetailSerializer, 400: BAD, 403: FORBIDDEN},
    )
    def post(self, request):
        """Start a sweep: checked like a run request (every trial is one) and for its search; accepted
        sweeps are RUNNING, and a worker makes their first trials (QUEUED runs) right after."""
        data = _body(request)
        team = perms.write_team(request, data.get("team"))
        perms.require_submit(request.user, team, "start sweeps")
        ser = s.SweepSubmitSerializer(data=data, context={"request": request})
        ser.is_valid(raise_exception=True)
        fields = {k: v for k, v in ser.validated_data.items() if k != "team"}
        try:
            sweep = sweep_services.create_sweep(team=team, user=request.user, **fields)
        except SweepRequestError as exc:
            raise _request_error(exc) from None
        sweep = perms.team_sweep(request.user, sweep.pk)
        body = s.SweepDetailSerializer(sweep, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": body["url"]})


class SweepDetailView(APIView):
    @extend_schema(operation_id="sweeps_retrieve", responses={200: s.SweepDetailSerializer, 404: NOT_FOUND})
    def get(self, request, pk):
        sweep = perms.team_sweep(request.user, pk)
        return Response(s.SweepDetailSerializer(sweep, context={"request": request}).data)


class SweepCancelView(APIView):
    @extend_schema(
        operation_id="sweeps_cancel",
        request=None,
        responses={
            200: s.SweepDetailSerializer,
            403: FORBIDDEN,
            404: NOT_FOUND,
            409: OpenApiResponse(description="The sweep has already ended."),
        },
    )
    def post(self, request, pk):
        """Cancel a sweep: no trial is made after this, and its trials' active runs are cancelled."""
        sweep = perms.team_sweep(request.user, pk)
        perms.require_submit(request.user, sweep.team, "cancel sweeps")
        if sweep.is_terminal:
            raise Conflict(f"Sweep {sweep.pk} already ended ({sweep.status}).")
        try:
            sweep_services.cancel(sweep, by=request.user.username)
        except (StaleStatus, IllegalTransition):
            sweep.refresh_from_db()
            raise Conflict(f"Sweep {sweep.pk} is now {sweep.status}.") from None
        sweep = perms.team_sweep(request.user, pk)
        return Response(s.SweepDetailSerializer(sweep, context={"request": request}).data)


class SweepTrialsView(APIView):
    pagination_class = NumberedPages

    @extend_schema(
        operation_id="sweeps_trials",
        parameters=_page_params("Trials"),
        responses={200: s.TrialSerializer(many=True), 400: BAD, 404: NOT_FOUND},
    )
    def get(self, request, pk):
        """The sweep's trials by number: parameters, objective, epochs run, and each epoch's value and
        the pruner's decision."""
        sweep = perms.team_sweep(request.user, pk)
        return _paged(self, request, sweep_services.trials_with_epochs(sweep), s.TrialSerializer)


# ---------------------------------------------------------------- the model registry

MODEL_TEAM_PARAM = OpenApiParameter(
    "team", str, description="A team id or slug: needed only when several of your teams have a model of this name."
)
DELETED = OpenApiResponse(description="Removed.")


def _registry_error(exc: registry.RegistryError) -> APIException:
    if exc.conflict:
        return Conflict(str(exc))
    if exc.missing:
        return NotFound(" ".join(exc.errors.values()))
    return ValidationError({k: [str(v)] for k, v in exc.errors.items()})


def _named_model(request, name) -> RegisteredModel:
    """The model `name` of the user's team (`?team=`, else the only one of their teams that has it);
    another team's is 404."""
    teams = perms.teams_param(request.user, request.query_params.get("team"))
    qs = registry.models_with_summary(RegisteredModel.objects.filter(team__in=teams, name=name))
    found = list(qs.select_related("team", "created_by").order_by("team__name")[:20])
    if not found:
        raise NotFound("No such model.")
    if len(found) > 1:
        slugs = ", ".join(m.team.slug for m in found)
        raise _bad("team", f"Several of your teams have a model named {name}; say which (id or slug): {slugs}.")
    return found[0]


def _versions(model):
    qs = model.versions.select_related("model", "created_by", "archived_by").prefetch_related("aliases")
    return qs.order_by("-version")


def _model_version(request, name, number):
    model = _named_model(request, name)
    version = _versions(model).filter(version=number).first()
    if version is None:
        raise NotFound(f"Model {name} has no version {number}.")
    version.model = model
    return version


def _version_body(request, version, **kwargs) -> Response:
    version = _model_version(request, version.model.name, version.version)  # fresh, with its aliases
    return Response(s.ModelVersionSerializer(version, context={"request": request}).data, **kwargs)


def _source(request, d):
    """The run or model file the body names (one of them), among the user's teams' (else 400)."""
    if ("run" in d) == ("modelfile" in d):
        raise _bad("run", "Give run or modelfile: the id of what to register (one of them).")
    if "run" in d:
        source = Run.objects.for_user(request.user).select_related("team", "dataset").filter(pk=d["run"]).first()
        if source is None:
            raise _bad("run", "No such run.")
        return source, "run"
    source = ModelFile.objects.for_user(request.user).select_related("team").filter(pk=d["modelfile"]).first()
    if source is None:
        raise _bad("modelfile", "No such model file.")
    return source, "modelfile"


class RegisteredModelListView(APIView):
    pagination_class = NumberedPages

    @extend_schema(
        operation_id="models_list",
        parameters=[TEAM_PARAM, *_page_params("Models")],
        responses={200: s.RegisteredModelSerializer(many=True), 400: BAD, 404: PAST_THE_END},
    )
    def get(self, request):
        """Your teams' registered models by name, with their latest version and aliases."""
        teams = perms.teams_param(request.user, request.query_params.get("team"))
        qs = RegisteredModel.objects.filter(team__in=teams).select_related("team", "created_by")
        qs = registry.models_with_summary(qs).order_by("name", "team__name", "id")
        return _paged(self, request, qs, s.RegisteredModelSerializer)


class RegisteredModelDetailView(APIView):
    @extend_schema(
        operation_id="models_retrieve",
        parameters=[MODEL_TEAM_PARAM],
        responses={200: s.RegisteredModelSerializer, 400: BAD, 404: NOT_FOUND},
    )
    def get(self, request, name):
        model = _named_model(request, name)
        return Response(s.RegisteredModelSerializer(model, context={"request": request}).data)


class ModelVersionListView(APIView):
    parser_classes = [JSONParser]
    pagination_class = NumberedPages

    @extend_schema(
        operation_id="models_versions",
        parameters=[MODEL_TEAM_PARAM, *_page_params("Versions")],
        responses={200: s.ModelVersionSerializer(many=True), 400: BAD, 404: NOT_FOUND},
    )
    def get(self, request, name):
        """The model's versions, newest first (archived ones too: `archived`)."""
        model = _named_model(request, name)
        return _paged(self, request, _versions(model), s.ModelVersionSerializer)

    @extend_schema(
        operation_id="models_register",
        request=s.RegisterSerializer,
        responses={201: s.ModelVersionSerializer, 400: BAD, 403: FORBIDDEN},
    )
    def post(self, request, name):
        """Register a succeeded run's model (`run`) or a READY uploaded model file (`modelfile`) as the
        next version of the model `name` of its team (made if new). Its files are copied."""
        ser = s.RegisterSerializer(data=_body(request))
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        source, kind = _source(request, d)
        raw_team = d.get("team") or request.query_params.get("team")
        if raw_team and not perms.teams_param(request.user, raw_team).filter(pk=source.team_id).exists():
            raise _bad("team", f"The {kind} is of team {source.team.slug}; the model goes to its team.")
        register = registry.register_run if kind == "run" else registry.register_modelfile
        try:
            version = register(source, name, d["description"], request.user, d["model_description"])
        except registry.RegistryError as exc:
            raise _registry_error(exc) from None
        version = _versions(version.model).get(pk=version.pk)
        body = s.ModelVersionSerializer(version, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": body["url"]})


class ModelVersionDetailView(APIView):
    @extend_schema(
        operation_id="models_version_retrieve",
        parameters=[MODEL_TEAM_PARAM],
        responses={200: s.ModelVersionSerializer, 400: BAD, 404: NOT_FOUND},
    )
    def get(self, request, name, version):
        v = _model_version(request, name, version)
        return Response(s.ModelVersionSerializer(v, context={"request": request}).data)


class ModelVersionArchiveView(APIView):
    @extend_schema(
        operation_id="models_version_archive",
        parameters=[MODEL_TEAM_PARAM],
        request=None,
        responses={200: s.ModelVersionSerializer, 400: BAD, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def post(self, request, name, version):
        """Archive a version: kept, but no longer resolvable or aliasable. Refused (400) while an alias
        points at it, or when it is archived already."""
        v = _model_version(request, name, version)
        try:
            registry.archive(v, request.user)
        except registry.RegistryError as exc:
            raise _registry_error(exc) from None
        return _version_body(request, v)


def _expected(d):
    if "expected_version" not in d:
        return registry.NO_CHECK
    return d["expected_version"] or None


ALIAS_CONFLICT = OpenApiResponse(description="expected_version was given and the alias points elsewhere now.")


class AliasView(APIView):
    parser_classes = [JSONParser]

    def _found(self, request, name, alias) -> Alias:
        model = _named_model(request, name)
        found = model.aliases.select_related("version", "updated_by").filter(name=alias).first()
        if found is None:
            raise NotFound(f"Model {name} has no alias {alias}.")
        found.model = model
        return found

    @extend_schema(
        operation_id="models_alias_retrieve",
        parameters=[MODEL_TEAM_PARAM],
        responses={200: s.AliasSerializer, 400: BAD, 404: NOT_FOUND},
    )
    def get(self, request, name, alias):
        return Response(s.AliasSerializer(self._found(request, name, alias)).data)

    def _set(self, request, name, alias):
        model = _named_model(request, name)
        ser = s.AliasSetSerializer(data=_body(request))
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        try:
            registry.set_alias(model, alias, d["version"], request.user, expected=_expected(d))
        except registry.RegistryError as exc:
            raise _registry_error(exc) from None
        return Response(s.AliasSerializer(self._found(request, name, alias)).data)

    @extend_schema(
        operation_id="models_alias_set",
        parameters=[MODEL_TEAM_PARAM],
        request=s.AliasSetSerializer,
        responses={200: s.AliasSerializer, 400: BAD, 403: FORBIDDEN, 404: NOT_FOUND, 409: ALIAS_CONFLICT},
    )
    def put(self, request, name, alias):
        """Set the alias to a version of this model (made if new, else moved); the move is recorded."""
        return self._set(request, name, alias)

    @extend_schema(
        operation_id="models_alias_set_post",
        parameters=[MODEL_TEAM_PARAM],
        request=s.AliasSetSerializer,
        responses={200: s.AliasSerializer, 400: BAD, 403: FORBIDDEN, 404: NOT_FOUND, 409: ALIAS_CONFLICT},
    )
    def post(self, request, name, alias):
        """The same as PUT."""
        return self._set(request, name, alias)

    @extend_schema(
        operation_id="models_alias_delete",
        parameters=[MODEL_TEAM_PARAM],
        request=None,
        responses={204: DELETED, 400: BAD, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def delete(self, request, name, alias):
        """Remove the alias (recorded as a move to no version)."""
        model = _named_model(request, name)
        try:
            registry.remove_alias(model, alias, request.user)
        except registry.RegistryError as exc:
            raise _registry_error(exc) from None
        return Response(status=status.HTTP_204_NO_CONTENT)


# ---------------------------------------------------------------- datasets


DATASET_FILTERS = [
    TEAM_PARAM,
    OpenApiParameter("status", str, description="Statuses, comma-separated (UPLOADED, CONVERTING, READY, ...)."),
    OpenApiParameter(
        "archived",
        str,
        enum=list(params.FLAGS),
        description="1 or true: include archived datasets (hidden by default).",
    ),
]


class DatasetListView(APIView):
    parser_classes = [MultiPartParser, FormParser]
    pagination_class = NumberedPages  # read by drf-spectacular too: the list is documented as paginated

    def initialize_request(self, request, *args, **kwargs):
        # Before anything reads the body (the session's CSRF check may): count the upload's bytes.
        if request.method == "POST":
            handler = LimitedUploadHandler(request, settings.MAX_UPLOAD_BYTES)
            request.upload_handlers.insert(0, handler)
            request.upload_limit_handler = handler
        return super().initialize_request(request, *args, **kwargs)

    @extend_schema(
        operation_id="datasets_list",
        parameters=[*DATASET_FILTERS, *_page_params("Datasets")],
        responses={200: s.DatasetSerializer(many=True), 400: BAD, 404: PAST_THE_END},
    )
    def get(self, request):
        """Your teams' datasets, newest first."""
        query = request.query_params
        teams = perms.teams_param(request.user, query.get("team"))
        qs = Dataset.objects.filter(team__in=teams).select_related("team", "created_by").order_by("-created_at", "-id")
        if not params.parse_flag(query.get("archived"), "archived"):
            qs = qs.exclude(status=Dataset.Status.ARCHIVED)
        qs = _status_filter(qs, query, Dataset.Status.values)
        return _paged(self, request, qs, s.DatasetSerializer)

    @extend_schema(
        operation_id="datasets_upload",
        request={"multipart/form-data": s.DatasetUploadSerializer},
        responses={
            201: s.DatasetSerializer,
            400: BAD,
            403: FORBIDDEN,
            413: OpenApiResponse(description="Over the upload limit."),
        },
    )
    def post(self, request):
        """Upload a dataset (multipart): stored UPLOADED at once, then converted by a worker; poll its
        status (UPLOADED → CONVERTING → READY or FAILED with the reason)."""
        limit = settings.MAX_UPLOAD_BYTES
        handler = request.upload_limit_handler
        if declared_too_large(request, limit):
            return Response({"detail": too_large_message(limit)}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        data = request.data
        if handler.exceeded:
            return Response({"detail": too_large_message(limit)}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        team = perms.write_team(request, data.get("team"))
        perms.require_submit(request.user, team, "upload datasets")
        form = UploadForm(data, request.FILES)
        if not form.is_valid():
            raise ValidationError({k: list(v) for k, v in form.errors.items()})
        try:
            ds = form.create(team=team, user=request.user)
        except DatasetError as exc:
            raise _bad("non_field_errors", str(exc)) from None
        ds = perms.team_dataset(request.user, ds.pk)
        body = s.DatasetSerializer(ds, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": body["url"]})


class DatasetDetailView(APIView):
    @extend_schema(operation_id="datasets_retrieve", responses={200: s.DatasetSerializer, 404: NOT_FOUND})
    def get(self, request, pk):
        ds = perms.team_dataset(request.user, pk)
        return Response(s.DatasetSerializer(ds, context={"request": request}).data)


# ---------------------------------------------------------------- what a run request can name


class ClusterListView(APIView):
    @extend_schema(operation_id="clusters_list", responses={200: s.ClusterSerializer(many=True)})
    def get(self, request):
        """The clusters runs can be submitted to, with their limits."""
        clusters = Cluster.objects.enabled().order_by("name")
        return Response(s.ClusterSerializer(clusters, many=True).data)


class TemplateListView(APIView):
    @extend_schema(operation_id="templates_list", responses={200: s.TemplateSerializer(many=True)})
    def get(self, request):
        """The model templates and their hyperparameters (name, kind, default, range or choices)."""
        return Response(template_schema())
