"""Spark MLlib classifiers as a run's model: the transfer-learning template's LogisticRegression head
on featurized images, and the MLP template's MultilayerPerceptronClassifier head on a table.

Trained in the driver's Spark application (no TFoS cluster). The same result fields as a Keras run:
the objective per iteration as `loss` points (executor "driver", step = iteration), validation on the
run's held-out training rows, predictions of the test split and its mean log loss.
"""

from __future__ import annotations

import os
import time


def fit_and_score(spec, train_path: str, test_path: str, estimator, model_dir: str) -> dict:
    """Fit ``estimator`` (featuresCol "fv", labelCol "label") on ``train_path`` less the run's
    validation rows, post its metrics, predict ``test_path``; save the model in ``model_dir``."""
    from pyspark.ml.functions import array_to_vector, vector_to_array
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    from workers.jobs import data, inference, metrics
    from workers.jobs.train import validation_rows

    spark = SparkSession.builder.getOrCreate()

    def load(path):
        df = spark.read.parquet(path)
        return df.select(
            "row_id", F.col("label").cast("double").alias("label"), array_to_vector("features").alias("fv")
        )

    train_df = load(train_path)
    val_df = None
    held_out = validation_rows(spec, 1, train_path)
    if held_out is not None:
        val_ids = data.row_ids_at(train_path, held_out)
        val_df = train_df.filter(F.col("row_id").isin(val_ids))
        train_df = train_df.filter(~F.col("row_id").isin(val_ids))
    train_df = train_df.cache()
    t0 = time.time()
    model = estimator.fit(train_df)
    fit_seconds = time.time() - t0
    # LogisticRegressionModel.summary is a property; MultilayerPerceptronClassificationModel's a method.
    summary = model.summary() if callable(model.summary) else model.summary
    history = [float(v) for v in summary.objectiveHistory]
    poster = metrics.MetricsPoster(
        spec.metrics.url,
        spec.metrics.token,
        "driver",
        pending_dir=metrics.pending_dir(spec.artifact_dir),
        close_seconds=spec.metrics.close_seconds,
    )
    for i, v in enumerate(history, start=1):
        poster.add("loss", v, i, 1)
    poster.add("epoch_loss", history[-1] if history else float("nan"), len(history), 1)
    poster.add("epoch_accuracy", summary.accuracy, len(history), 1)
    val = {}
    if val_df is not None:
        val = score(model.transform(val_df))
        poster.add("val_loss", val["loss"], len(history), 1)
        poster.add("val_accuracy", val["accuracy"], len(history), 1)
    poster.close()
    train_df.unpersist()

    probs = vector_to_array("probability")
    pred = model.transform(load(test_path)).select(
        "row_id",
        "label",
        "prediction",
        F.array_max(probs).alias("confidence"),
        F.element_at(probs, F.col("label").cast("int") + 1).alias("p_label"),
    )
    rows = sorted(pred.toLocalIterator(), key=lambda r: r.row_id)
    results = [(int(r.row_id), int(r.label), int(r.prediction), float(r.confidence)) for r in rows]
    inference.write_predictions(results, os.path.join(spec.artifact_dir, "predictions"))
    model.write().overwrite().save(model_dir)
    correct = sum(1 for _, label, p, _ in results if label == p)
    return {
        "test_rows": len(results),
        "test_accuracy": round(correct / len(results), 6) if results else None,
        "test_loss": inference.mean_log_loss([r.p_label for r in rows]),
        "train_accuracy": round(float(summary.accuracy), 6),
        **({"val_accuracy": val["accuracy"], "val_loss": val["loss"]} if val else {}),
        "fit_seconds": round(fit_seconds, 3),
        "iterations": int(getattr(summary, "totalIterations", len(history))),  # the fit's own count (run page)
        "history": {"loss": history},
        "model": model_dir,
    }


def score(predicted) -> dict:
    """Accuracy and mean log loss of a model's transform() output (label, prediction, probability)."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    from workers.jobs import inference

    rows = predicted.select(
        (F.col("label") == F.col("prediction")).cast("int").alias("hit"),
        F.element_at(vector_to_array("probability"), F.col("label").cast("int") + 1).alias("p_label"),
    ).collect()
    hits = sum(r.hit for r in rows)
    return {
        "accuracy": round(hits / len(rows), 6) if rows else None,
        "loss": inference.mean_log_loss([r.p_label for r in rows]),
    }


def mlp_head(spec) -> dict:
    """The MLP template's MLlib head: MultilayerPerceptronClassifier (sigmoid hidden layers, softmax out,
    L-BFGS) on the table's standardized features; the model is zipped for download."""
    from pyspark.ml.classification import MultilayerPerceptronClassifier

    from workers.jobs.featurize import zip_dir

    hp = spec.hyperparameters
    (dim,) = spec.dataset.shape
    hidden = [int(hp.get("units", 64))] * int(hp.get("layers", 2))
    mlp = MultilayerPerceptronClassifier(
        featuresCol="fv",
        labelCol="label",
        layers=[int(dim), *hidden, int(spec.dataset.num_classes)],
        maxIter=int(hp.get("max_iter", 200)),
        blockSize=int(hp.get("batch_size", 128)),
        seed=spec.seed,
    )
    model_dir = os.path.join(spec.artifact_dir, "model")
    out = fit_and_score(spec, spec.dataset.train, spec.dataset.test, mlp, os.path.join(model_dir, "mllib_mlp"))
    zip_path = os.path.join(model_dir, "model.zip")
    zip_dir(model_dir, zip_path, exclude={"model.zip"})
    out["model"] = zip_path
    return out
