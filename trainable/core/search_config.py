"""SearchConfig: everything `vidtune search` takes, validated before Ray starts (no Ray here).

Each field is one flag (its metadata: scripts/_args.py builds the parser); the rules that a
config must pass are the table _RULES at the end. Where its files live: core/storage.py.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from vidtune.data import DataConfig
from vidtune.search_spaces import (
    SearchSpace,
    SpaceSpec,
    get_space,
    resolve_spec,
    sha256_of,
    source_of,
    space_label,
)
from vidtune.trainable.core.precision import PRECISIONS, check_precision
from vidtune.trainable.core.space_check import check_space
from vidtune.trainable.core.storage import is_uri, read_text

CONFIG_FILE = "vidtune.json"
SAMPLERS = ("tpe", "random")
SCHEDULERS = ("asha", "none")
CPU_SHARING = ("threads", "restart", "none")
WARM_START_USES = ("all", "full", "explore")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(h|m|s|)")


def parse_duration(text: str) -> float:
    """'15m', '90s', '1h30m', '2h', '300' (seconds) -> seconds. ValueError naming the text."""
    spec = str(text).strip().lower()
    parts = _DURATION.findall(spec)
    if not spec or "".join(n + u for n, u in parts) != spec or (len(parts) > 1 and "" in
                                                                [u for _, u in parts]):
        raise ValueError(f"duration {text!r} is not understood; write e.g. 15m, 90s, 1h30m or 2h")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1, "": 1}[u] for n, u in parts)


# --gpus-per-trial auto: NaN, which no real share can be; the driver replaces it with a measured
# share before Ray starts (core.packing), so a saved vidtune.json always holds a number.
GPUS_AUTO = math.nan


def parse_gpus(text: str) -> float:
    """'auto' -> GPUS_AUTO, '0.25' -> 0.25 (SearchConfig checks the range). ValueError naming it."""
    spec = str(text).strip().lower()
    if spec == "auto":
        return GPUS_AUTO
    try:
        value = float(spec)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"gpus per trial {text!r} is not understood; give a number, e.g. 0.25 "
                         "to pack four trials per GPU, 0 for CPU trials, or auto")
    return value


def format_duration(seconds: float) -> str:
    """900 -> '15m', 5400 -> '1h30m', 75 -> '1m15s'."""
    s = int(round(seconds))
    h, m, sec = s // 3600, s % 3600 // 60, s % 60
    return "".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m"), (sec, "s")) if v) or "0s"


def _arg(default: Any, help: str, group: str = "search", **extra: Any) -> Any:
    """A field whose metadata is its command-line flag (scripts/_args.py builds the parser)."""
    return field(default=default, metadata={"help": help, "group": group, **extra})


@dataclass(frozen=True)
class SearchConfig:
    """Everything `vidtune search` takes. Each field is one flag (--num-samples for num_samples)."""

    space: SpaceSpec = _arg("default", "named search space (see `vidtune spaces`) or a define-by-run "
                            "function: path/to/spaces.py:my_space or module:my_space")
    num_samples: int = _arg(12, "trials in total, the seed configuration included; with "
                            "--time-budget an optional cap (0: none)", "budget")
    max_epochs: int = _arg(6, "epochs of a trial that ASHA never stops", "budget")
    time_budget_s: float = _arg(0.0, "wall time for the search, e.g. 15m, 90s, 1h30m: no trial "
                                "starts that cannot reach its first rung in time, and at the end "
                                "the search stops as Ctrl-C does (resumable)", "budget",
                                flag="--time-budget", type=parse_duration, metavar="DURATION")
    grace_period: int = _arg(1, "epochs before ASHA's first stopping decision", "ASHA")
    reduction_factor: float = _arg(3.0, "ASHA keeps the top 1/N of the trials at each rung", "ASHA")
    promotion_cap: bool = _arg(False, "let at most 1/N of the trials at a rung through, whatever "
                               "order they arrive in (fewer epochs, lower best accuracy: see "
                               "docs/benchmarks.md)", "ASHA", flag="--asha-cap")
    asha_cost_factor: float = _arg(2.0, "a trial whose seconds per epoch exceed this many times "
                                   "the median of its rung continues only if it leads the rung "
                                   "(0: off, ASHA's quantile alone)", "ASHA")
    sampler: str = _arg("tpe", f"proposals: {' or '.join(SAMPLERS)} (random: a baseline)")
    scheduler: str = _arg("asha", f"early stopping: {' or '.join(SCHEDULERS)} (none: every trial "
                          "trains max_epochs)", "ASHA")
    tpe_multivariate: bool = _arg(False, "TPE models the parameters jointly (Optuna's "
                                  "multivariate TPE) instead of one by one")
    tpe_constant_liar: bool = _arg(False, "TPE counts the running trials as bad results, so "
                                   "configs proposed side by side spread out")
    tpe_prior_weight: float = _arg(0.0, "share of TPE's random start-up trials drawn near the "
                                   "space's first trial (the seed configuration, or a warm "
                                   "start's best) instead of uniformly: PriorBand's idea (0: "
                                   "off; not yet measured in the race)")
    batch_size: int = _arg(32, "batch size (the 'wide' space samples it)")
    seed: int = _arg(0, "TPE sampler, trial initialisation and batch order")
    max_concurrent: int = _arg(0, "cap on trials at once; 0: what the resources allow")
    max_failures: int = _arg(2, "retries of a crashed trial, from its last checkpoint")
    keep_checkpoints: int = _arg(3, "finished trials whose last checkpoint is kept, the best "
                                 "first (running trials keep theirs for resume)", "storage")
    cpus_per_trial: float = _arg(1.0, "CPUs per trial (= its torch threads)", "resources")
    gpus_per_trial: float = _arg(0.0, "GPUs per trial; fractions pack trials on a GPU, e.g. "
                                 "0.25; auto: as many trials per GPU as fit in its memory, "
                                 "measured on this machine's GPU before Ray starts",
                                 "resources", type=parse_gpus, metavar="N|auto")
    precision: str = _arg("auto", "what trials compute in: bf16 (autocast; the LSTM stays fp32), "
                          "fp32, or auto: bf16 on a GPU with bf16 or a CPU with AMX/AVX512-BF16, "
                          "else fp32 (each trial's reports record the choice)", "resources",
                          choices=PRECISIONS)
    address: str = _arg("", "Ray cluster to join: 'auto' or HOST:PORT (default: an embedded "
                        "local Ray)", "resources")
    num_cpus: int = _arg(0, "embedded Ray: CPUs to use (0: all)", "resources")
    num_gpus: float = _arg(-1.0, "embedded Ray: GPUs to expose (-1: autodetect)", "resources")
    cpu_sharing: str = _arg("threads", "CPUs no trial can use (the end of a search, few "
                            "samples) go to the running trials: 'threads' raises their torch "
                            "threads in place, 'restart' restarts them with more CPUs (Ray's "
                            "ResourceChangingScheduler), 'none' leaves them idle",
                            "resources")
    name: str = _arg("", "experiment name (default search-<timestamp>)", "storage")
    results_dir: str = _arg("results", "local results root", "storage")
    storage: str = _arg("", "shared path or URI for multi-node clusters (e.g. /mnt/nfs/x, "
                        "s3://bucket/x)", "storage")
    optuna_storage: str = _arg("", "database URL of the mirrored Optuna study (default: sqlite "
                               "optuna.db in the results)", "storage")
    data: DataConfig = field(default_factory=DataConfig)
    warm_start: tuple[str, ...] = _arg((), "earlier searches (results folders) whose finished "
                                       "trials TPE learns from before its first proposal",
                                       metavar="DIR", nargs="+")
    warm_start_use: str = _arg("all", "what TPE takes from the warm start: 'all' finished "
                               "trials, ASHA-stopped ones included (they count toward TPE's "
                               "random start-up trials); 'full': only the trials that trained "
                               "max_epochs; 'explore': all, and TPE's start-up trials still run",
                               choices=WARM_START_USES)
    verbose: bool = _arg(False, "show Ray's full trial table every 15 s instead of one "
                         "progress line", "output")
    mlflow: str = _arg("", "MLflow tracking URI: the search is a run, each trial a child run "
                       "(e.g. sqlite:////abs/mlflow.db or http://host:5000; needs "
                       "pip install 'vidtune[mlflow]')", "tracking", metavar="URI")
    mlflow_experiment: str = _arg("vidtune", "MLflow experiment the search's runs go to",
                                  "tracking", metavar="NAME")
    # The space file's sha256 when the search started (resolved() sets it): a recorded search
    # refuses a space file that has moved or changed since. Not a flag.
    space_sha256: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "space", _space_spec(self.space))
        warm = (self.warm_start,) if isinstance(self.warm_start, str) else tuple(self.warm_start)
        if not all(isinstance(p, str) and p for p in warm):
            raise ValueError(f"warm_start is {self.warm_start!r}; give results folders of earlier "
                             "searches, e.g. ('results/search-1',)")
        object.__setattr__(self, "warm_start", warm)
        if not self.space_sha256:   # a new search; a recorded one is checked by search_space()
            check_space(get_space(self.space))   # names the known spaces, the file and line
        for rule in _RULES:
            problem = rule(self)
            if problem:
                raise ValueError(problem)

    @property
    def gpus_auto(self) -> bool:
        """--gpus-per-trial auto, not yet replaced by a measured share (core.packing)."""
        return math.isnan(self.gpus_per_trial)

    def resolved(self) -> SearchConfig:
        """Absolute paths (trials chdir into their own folder), a concrete name, and the
        content hash of a user's space file (recorded in vidtune.json)."""
        name = self.name or time.strftime("search-%Y%m%d-%H%M%S")
        storage = self.storage
        if storage and not is_uri(storage):
            storage = str(Path(storage).expanduser().resolve())
        space, sha = self.space, self.space_sha256
        if isinstance(space, str) and ":" in space:
            space = resolve_spec(space)
            source = source_of(space)
            sha = sha or (sha256_of(source) if source else "")
        warm = tuple(p if is_uri(p) else str(Path(p).expanduser().resolve()) for p in self.warm_start)
        return replace(self, name=name, storage=storage, data=self.data.resolved(),
                       results_dir=str(Path(self.results_dir).expanduser().resolve()),
                       space=space, space_sha256=sha, warm_start=warm)

    def search_space(self) -> SearchSpace:
        """The space. For a recorded search, a space file moved or changed since is an error."""
        return get_space(self.space, self.space_sha256)

    @property
    def space_label(self) -> str:
        """The space in one line of text: its name or spec, or 'declared'."""
        return space_label(self.space)

    @property
    def storage_root(self) -> str:
        """Where Ray writes: the shared storage if given, else the local results dir."""
        return self.storage or self.results_dir

    @property
    def experiment_path(self) -> str:
        return f"{self.storage_root.rstrip('/')}/{self.name}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SearchConfig:
        d = dict(d)
        d["data"] = DataConfig(**d.get("data", {}))
        return cls(**d)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> SearchConfig:
        """A search file (.toml) or an earlier search's vidtune.json, with keyword arguments
        overriding it as flags do on the command line (data= takes a dict of DataConfig fields
        or a DataConfig). Errors point at the file's line. See trainable/core/config_file.py."""
        from vidtune.trainable.core.config_file import file_keys, locate, read_config_file

        values, data, reader = read_config_file(path, cls)
        data_over = overrides.pop("data", None)
        keys = file_keys(values, data, reader)
        keys = {k: s for k, s in keys.items()
                if k not in overrides and not (s == "data" and (isinstance(data_over, DataConfig)
                                                               or k in (data_over or {})))}
        try:
            if isinstance(data_over, DataConfig):
                data_cfg = data_over
            else:
                data_cfg = DataConfig(**{**data, **dict(data_over or {})})
            return cls(**{**values, **overrides}, data=data_cfg)
        except ValueError as exc:
            raise locate(exc, reader, keys) from None

    @classmethod
    def load(cls, path: str | Path) -> SearchConfig:
        """The config saved in an experiment folder (path or URI), pointed at where it is now.

        A folder moved or copied since the search ran still loads: its storage root and name
        are taken from the path, not from the saved file.
        """
        text = read_text(str(path), CONFIG_FILE)
        if text is None:
            raise ValueError(f"{path} is not a vidtune results folder (no {CONFIG_FILE}); "
                             "pass the folder that `vidtune search` printed")
        where = f"{str(path).rstrip('/')}/{CONFIG_FILE}"
        try:
            d = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{where} is damaged ({exc}): it holds the search's settings and "
                             "cannot be rebuilt from the other files; restore it from a "
                             "backup, or mend it by hand (it is JSON; a cut file lacks its "
                             "end)") from None
        try:
            cfg = cls.from_json(d)
        except (TypeError, KeyError, AttributeError) as exc:
            raise ValueError(f"{where} does not hold vidtune settings ({exc}): it was written "
                             "by another vidtune version or edited; use that version, or "
                             "restore the file") from None
        if is_uri(str(path)):
            root, name = str(path).rstrip("/").rsplit("/", 1)
            return replace(cfg, storage=root, name=name)
        folder = Path(path).expanduser().resolve()
        if cfg.storage:
            return replace(cfg, storage=str(folder.parent), name=folder.name)
        return replace(cfg, results_dir=str(folder.parent), name=folder.name)


def _space_spec(space: Any) -> str | dict[str, Any]:
    """A name, a "file.py:function" spec or a declaration (a plain dict); a function given in
    Python becomes its spec, so that trials and a resumed search can load it again."""
    if isinstance(space, str):
        return space
    if isinstance(space, Mapping):
        return json.loads(json.dumps(space))    # a plain copy: it is saved in vidtune.json
    if callable(space):
        return get_space(space).name
    raise ValueError(f"space is {space!r}; give a name (see `vidtune spaces`), "
                     "'path/to/spaces.py:my_space', a function or a declaration (a dict)")


# -- the rules of a SearchConfig -------------------------------------------------------------
# Each takes the config and returns its error, naming the value and the fix, or None.
Rule = Callable[[SearchConfig], "str | None"]


def _at_least(name: str, low: float, note: str = "") -> Rule:
    def rule(cfg: SearchConfig) -> str | None:
        value = getattr(cfg, name)
        return None if value >= low else f"{name} is {value}, but must be >= {low:g}{note}"
    return rule


def _above(name: str, low: float) -> Rule:
    def rule(cfg: SearchConfig) -> str | None:
        value = getattr(cfg, name)
        return None if value > low else f"{name} is {value}, but must be > {low:g}"
    return rule


def _one_of(name: str, known: tuple[str, ...]) -> Rule:
    def rule(cfg: SearchConfig) -> str | None:
        value = getattr(cfg, name)
        return None if value in known else f"{name} is {value!r}; known: {', '.join(known)}"
    return rule


def _num_samples(cfg: SearchConfig) -> str | None:
    if cfg.num_samples < 0 or (cfg.num_samples == 0 and not cfg.time_budget_s):
        return (f"num_samples is {cfg.num_samples}; give a number of trials >= 1, or 0 (no cap) "
                "together with --time-budget")
    return None


def _grace_within_max_epochs(cfg: SearchConfig) -> str | None:
    if cfg.grace_period > cfg.max_epochs:
        return (f"grace_period ({cfg.grace_period}) is larger than max_epochs ({cfg.max_epochs}); "
                "lower --grace-period or raise --max-epochs")
    return None


def _precision(cfg: SearchConfig) -> str | None:
    try:
        check_precision(cfg.precision)
    except ValueError as exc:   # its message names the known precisions
        return str(exc)
    return None


def _tpe_prior_weight(cfg: SearchConfig) -> str | None:
    if 0.0 <= cfg.tpe_prior_weight <= 1.0:
        return None
    return (f"tpe_prior_weight is {cfg.tpe_prior_weight}, but must lie in [0, 1] (0: off; e.g. "
            "0.5 draws half of TPE's start-up trials near the seed configuration)")


def _gpus_per_trial(cfg: SearchConfig) -> str | None:
    gpus = cfg.gpus_per_trial
    if cfg.gpus_auto or 0 <= gpus <= 1:
        return None
    # A trial trains on one device (cuda:0 of those Ray gives it): above 1 the other GPUs
    # would sit idle, reserved. Refused until a trial can use them.
    return (f"gpus_per_trial is {gpus}, but must lie in [0, 1]: a trial trains on one GPU; "
            "give 1 for a whole GPU per trial, a fraction such as 0.25 to pack four trials per "
            "GPU, or auto")


def _counts(cfg: SearchConfig) -> str | None:
    if cfg.max_concurrent < 0 or cfg.max_failures < 0:
        return "max_concurrent and max_failures must be >= 0"
    return None


def _name(cfg: SearchConfig) -> str | None:
    if cfg.name and not re.fullmatch(r"[A-Za-z0-9._-]+", cfg.name):
        return f"name is {cfg.name!r}; use letters, digits, '.', '_' and '-'"
    return None


def _storage(cfg: SearchConfig) -> str | None:
    if cfg.storage and not is_uri(cfg.storage) and not Path(cfg.storage).expanduser().is_absolute():
        return (f"storage is {cfg.storage!r}; give an absolute path every node can reach (e.g. "
                "/mnt/nfs/vidtune) or a URI (e.g. s3://bucket/vidtune)")
    return None


def _optuna_storage(cfg: SearchConfig) -> str | None:
    if cfg.optuna_storage and not is_uri(cfg.optuna_storage):
        return (f"optuna_storage is {cfg.optuna_storage!r}; give a database URL, e.g. "
                "postgresql://user@host/db or sqlite:////abs/path/optuna.db")
    return None


def _embedded_ray_sizes(cfg: SearchConfig) -> str | None:
    if (cfg.num_cpus or cfg.num_gpus >= 0) and cfg.address:
        return ("num_cpus/num_gpus size an embedded Ray; with --address the cluster's own "
                "resources are used")
    return None


def _data_source(cfg: SearchConfig) -> str | None:
    data = cfg.data
    source = Path(data.source).expanduser()
    if data.is_manifest and not source.is_file():
        return (f"manifest {data.source!r} does not exist; give a CSV file with the columns "
                "path,label[,split][,start,end]")
    if not data.is_synthetic and not data.is_manifest and source.is_file():
        return (f"data {data.source!r} is a file, but --data takes a folder "
                "root/<class>/<video files> with one subfolder per class, or a manifest .csv "
                "with the columns path,label[,split][,start,end]; put the videos in such a "
                "folder or list them in a manifest (or, to classify one video, use "
                f"`vidtune predict MODEL {data.source}`)")
    if not data.is_synthetic and not data.is_manifest and not source.is_dir():
        return (f"data folder {data.source!r} does not exist; expected "
                "root/<class>/<video files>, a manifest .csv or 'synthetic'")
    return None


# In this order: the first that fails is the error.
_RULES: tuple[Rule, ...] = (
    _at_least("max_epochs", 1),
    _at_least("grace_period", 1),
    _at_least("batch_size", 1),
    _at_least("time_budget_s", 0, " (0: none)"),
    _num_samples,
    _at_least("keep_checkpoints", 0),
    _grace_within_max_epochs,
    _one_of("sampler", SAMPLERS),
    _one_of("cpu_sharing", CPU_SHARING),
    _one_of("warm_start_use", WARM_START_USES),
    _one_of("scheduler", SCHEDULERS),
    _at_least("asha_cost_factor", 0, " (0: off; e.g. 2 lets a trial at twice the median cost "
              "continue only if it leads its rung)"),
    _tpe_prior_weight,
    _at_least("reduction_factor", 2),
    _precision,
    _above("cpus_per_trial", 0),
    _gpus_per_trial,
    _counts,
    _name,
    _storage,
    _optuna_storage,
    _embedded_ray_sizes,
    _data_source,
)
