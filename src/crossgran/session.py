"""The setup a notebook (or any script) needs before its first real step: the profile chosen,
its inputs checked, its folders made, torch's thread count held for the session.

Why apart from :mod:`crossgran.profiles`: choosing ``auto`` asks the machine (a GPU?) and the
network (full inputs reachable?), which is the data layer's job; profiles stay plain settings
that import nothing else of crossgran.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace

from crossgran import threads
from crossgran.profiles import AUTO, DEFAULT_PROFILE, Profile, find_root, get_profile

# A notebook kernel is one session: the thread limit entered by prepare() lasts as long as it.
_SESSION = contextlib.ExitStack()


def auto_profile_name() -> str:
    """``full`` on a machine with a CUDA GPU that has (or can download) the full inputs, else
    the offline default.

    Why: a notebook opened on Colab with a GPU runtime should run the paper's setting, and the
    same notebook on Binder or a laptop the offline ``mini``. The GPU is checked first, so a
    machine without one never waits for the network probe.
    """
    import torch

    if not torch.cuda.is_available():
        return DEFAULT_PROFILE
    from crossgran.data.remote import full_inputs_obtainable

    return "full" if full_inputs_obtainable(get_profile("full", find_root())) else DEFAULT_PROFILE


def torch_device() -> str:
    """``"cuda"`` where a CUDA GPU is present, else ``"cpu"``: where this session's torch work
    (BiLSTM probes, model inference) runs."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def prepare(name: str, on_colab: bool = False, bigcarp_seed: int | None = None) -> Profile:
    """What every notebook's setup cell needs, in one call: the profile (chosen by the machine
    on Colab, see :func:`auto_profile_name`), its inputs checked (``full`` stops here, with one
    message, when downloads are missing and unreachable), its folders made and torch's thread
    count applied for the rest of the session. ``bigcarp_seed`` replaces the profile's BiGCARP
    training seed (notebook 02's parameter of the same name)."""
    from crossgran.data.remote import check_inputs

    settings = get_profile(auto_profile_name() if on_colab or name == AUTO else name)
    if bigcarp_seed is not None:
        settings = replace(settings, bigcarp=replace(settings.bigcarp, seed=bigcarp_seed))
    check_inputs(settings)
    settings.make_dirs()
    _SESSION.close()
    _SESSION.enter_context(threads.limit(torch_threads=settings.torch_threads))
    return settings
