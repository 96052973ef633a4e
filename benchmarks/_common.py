"""What the benchmarks on the head-to-head chapter's defences share: their command line (``--defences``,
``--profile``, ``--threads`` and the script's own arguments) and the chapter's inputs, loaded from the artefact
cache as the chapter builds them. A script imports it as a sibling module (``python benchmarks/<script>.py``
puts this folder first on the path)."""

import argparse

import torch

import advdetect as ad


def head_to_head(doc: str, defences: str, add_arguments=None) -> tuple[argparse.Namespace, dict]:
    """Parse the command line of a benchmark whose docstring is ``doc`` (``--defences`` defaults to
    ``defences``; ``add_arguments(parser)`` adds the script's own) and load the chapter's inputs
    (:func:`advdetect.chapters.head_to_head_inputs`) on ``--threads`` torch threads. Returns (arguments,
    inputs); an unknown defence or profile ends the script with the library's message."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--defences", default=defences)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the chapter's workers use one each)")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args()
    ad.runtime.configure_threads()
    torch.set_num_threads(args.threads)
    try:
        return args, ad.chapters.head_to_head_inputs(args.profile, args.defences)   # the chapter's images
    except ValueError as e:
        raise SystemExit(str(e)) from None
