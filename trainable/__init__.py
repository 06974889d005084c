"""The trainable: everything between a sampled configuration and a trained model, by layer.

- core/  configs (model, train, search), the VideoModel, the pure-PyTorch loop, checkpoints,
         one trial as plain Python, and the vocabulary of trial outcomes. No Ray.
- tune/  the Ray Tune layer: the search driver, the thin trainable adapter, resumable ASHA,
         the Optuna mirror, and the reader of Ray's results files. The only place that
         imports Ray.
- best/  what comes after a search: retrain the best trial, model folders (save, load,
         export), train/evaluate one configuration, predict on video files.

Imports only go down this list's reverse: best -> tune -> core (and core -> data,
search_spaces). Nothing here prints: the commands in vidtune.scripts do.
"""
