"""`loopline components [list|export] [--markdown]`: what components exist, and their KFP YAMLs."""

from __future__ import annotations

import argparse
import contextlib
import sys

from loopline.cli.common import EXIT_OK, Subcommands, output_folder


def cmd_components(args: argparse.Namespace) -> int:
    from loopline.components import registry

    if args.action == "export":
        from loopline.backends.kfp.components import export_components
        from loopline.backends.kubernetes import step_image

        with contextlib.redirect_stdout(sys.stderr):
            written = export_components(output_folder(args.output), step_image(args.image))
        print(f"wrote {len(written)} KFP component YAMLs to {args.output}", file=sys.stderr)
        return EXIT_OK
    if args.markdown:
        from loopline.pipeline.reference import components_markdown

        sys.stdout.write(components_markdown())
        return EXIT_OK

    for name in registry.names():
        component = registry.get(name)
        print(f"{name:24} {component.description}")
    return EXIT_OK


def register(sub: Subcommands) -> None:
    components = sub.add_parser("components", help="list registered components, or export them")
    components.add_argument("action", nargs="?", choices=["list", "export"], default="list")
    components.add_argument("--markdown", action="store_true", help="the reference, as Markdown")
    components.add_argument("-o", "--output", default="components",
                            help="export: folder for the KFP component YAMLs")
    components.add_argument("--image", help="export: step image in the YAMLs")
    components.set_defaults(fn=cmd_components)
