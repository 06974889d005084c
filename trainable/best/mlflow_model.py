"""A retrained model folder as an MLflow model: what `vidtune retrain` logs with --mlflow
(or the search's own tracking URI). The runs and the URI's check are core.tracking's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vidtune.trainable.best.artifact import CONFIG, METRICS, WEIGHTS
from vidtune.trainable.core import tracking


def log_model(uri: str, experiment: str, experiment_path: str, model_folder: Path, model: Any,
              example: Any, *, val_acc: float, params: dict[str, Any], metrics: dict[str, Any],
              trial_id: str) -> str:
    """Log a retrained model folder as an MLflow model in a run of its own (a child of the
    search's run, if it has one); returns the model URI that mlflow.pytorch.load_model takes.

    The model is saved as a torch.export program (MLflow's "pt2" format, traced on `example`,
    a batch of 2 clips so the batch size stays dynamic), with the folder's weights.pt,
    config.json and metrics.json beside it (vidtune's own loader reads those)."""
    import mlflow
    import numpy as np
    import torch
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    c = tracking.client(uri)
    exp_id = tracking.experiment_id(c, uri, experiment)
    parent = tracking.search_run(c, exp_id, experiment_path)
    tags = {tracking.ROLE: "retrain", tracking.PATH: experiment_path, tracking.TRIAL: trial_id}
    if parent is not None:
        tags[tracking.PARENT] = parent.info.run_id
    run = c.create_run(exp_id, run_name=f"retrain {trial_id}", tags=tags)
    rid = run.info.run_id
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(run_id=rid):
        mlflow.log_params(tracking._params(params))
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()
                            if isinstance(v, int | float) and not isinstance(v, bool)})
        mlflow.log_metric("val_acc", float(val_acc))
        with torch.no_grad():
            logits = model(example)   # (B, num_classes)
        # A TensorSpec signature (batch dimension -1: dynamic) is what the pt2 format needs.
        signature = ModelSignature(
            inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *example.shape[1:]))]),
            outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *logits.shape[1:]))]))
        info = mlflow.pytorch.log_model(
            model, name="model", input_example=example.numpy(), serialization_format="pt2",
            signature=signature,
            extra_files=[str(model_folder / n) for n in (WEIGHTS, CONFIG, METRICS)],
            # Given, not inferred: inference imports the model in a subprocess (seconds).
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])
    return str(info.model_uri)
