"""Search spaces: the named built-ins, a user's define-by-run functions, declared spaces."""

from vidtune.search_spaces._declared import DeclaredSpace
from vidtune.search_spaces._registry import (
    SearchSpace,
    SpaceError,
    SpaceSpec,
    get_space,
    list_spaces,
    register,
    space_distributions,
    space_label,
)
from vidtune.search_spaces._trace import Sampled, Trace, trace_space
from vidtune.search_spaces._user import (
    SpaceRef,
    check_unchanged,
    file_spaces,
    resolve_spec,
    sha256_of,
    source_of,
)
from vidtune.search_spaces.spaces import (
    SEED_DEFAULT,
    decode_widths,
    default_space,
    tiny_space,
    to_hparams,
    wide_space,
)

__all__ = [
    "SEED_DEFAULT",
    "DeclaredSpace",
    "Sampled",
    "SearchSpace",
    "SpaceError",
    "SpaceRef",
    "SpaceSpec",
    "Trace",
    "check_unchanged",
    "decode_widths",
    "default_space",
    "file_spaces",
    "get_space",
    "list_spaces",
    "register",
    "resolve_spec",
    "sha256_of",
    "source_of",
    "space_distributions",
    "space_label",
    "tiny_space",
    "to_hparams",
    "trace_space",
    "wide_space",
]
