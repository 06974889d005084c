"""Named Optuna define-by-run search spaces."""

from vidtune.search_spaces._registry import (
    SearchSpace,
    get_space,
    list_spaces,
    register,
    space_distributions,
)
from vidtune.search_spaces.spaces import (
    SEED_DEFAULT,
    default_space,
    tiny_space,
    to_hparams,
    video_space,
    wide_space,
)

__all__ = [
    "SEED_DEFAULT",
    "SearchSpace",
    "default_space",
    "get_space",
    "list_spaces",
    "register",
    "space_distributions",
    "tiny_space",
    "to_hparams",
    "video_space",
    "wide_space",
]
