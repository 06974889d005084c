"""After a search: retrain the best trial, model folders, train/evaluate one config, predict.

- retrain.py     pick the best trial (core.results.best_trial) and retrain it from scratch
- artifact.py    a model folder: weights, config, metrics, torch.export program
- standalone.py  train or evaluate one configuration outside a search
- predict.py     a saved model applied to a data set or to video files
- mlflow_model.py  a retrained model folder logged as an MLflow model (retrain --mlflow)
"""

from vidtune.trainable.best.artifact import load_artifact, load_exported, save_artifact
from vidtune.trainable.best.predict import (
    Evaluation,
    VideoPrediction,
    evaluate_model,
    predict_videos,
)
from vidtune.trainable.best.retrain import Choice, RetrainOutcome, retrain_best
from vidtune.trainable.best.standalone import evaluate_artifact, train_model

__all__ = [
    "Choice",
    "Evaluation",
    "RetrainOutcome",
    "VideoPrediction",
    "evaluate_artifact",
    "evaluate_model",
    "load_artifact",
    "load_exported",
    "predict_videos",
    "retrain_best",
    "save_artifact",
    "train_model",
]
