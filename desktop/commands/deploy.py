"""Headless deploys for terminals and CI pipelines: ``deploy``, ``status``, ``outputs``, ``destroy``.

Plain text out (aligned tables, a text progress bar, one line per stack event) and an exit code:
0 done or nothing to change, 1 failed, 2 usage error (including "cannot ask for confirmation"),
130 interrupted. Expected failures print one sentence, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from desktop.services.aws import AwsTarget
from desktop.services.deploy import (
    DeployEngine,
    DeployResult,
    Plan,
    Progress,
    StackEvent,
)
from desktop.services.errors import ConfigurationError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
BAR_WIDTH = 20


def register(subparsers: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--stack", required=True, metavar="NAME", help="the CloudFormation stack")
    common.add_argument("--profile", help="AWS profile (default: the AWS CLI's default chain)")
    common.add_argument("--region", help="AWS region (default: the profile's region)")
    common.add_argument(
        "--endpoint-url", metavar="URL", help="send AWS calls here instead (a local emulator)"
    )
    polling = argparse.ArgumentParser(add_help=False)
    polling.add_argument(
        "--poll-interval",
        type=_seconds,
        default=3.0,
        metavar="SECONDS",
        help="how often to ask CloudFormation for new events (default 3)",
    )

    deploy = subparsers.add_parser(
        "deploy",
        parents=[common, polling],
        help="package the backend and deploy or update its stack",
        description="Package and upload the backend, show the change set, confirm, and deploy.",
    )
    deploy.add_argument(
        "--param",
        action="append",
        default=[],
        type=_parameter,
        metavar="KEY=VALUE",
        help="a template parameter (repeatable); others keep their defaults or previous values",
    )
    deploy.add_argument("--yes", action="store_true", help="deploy without asking to confirm")
    deploy.set_defaults(func=_usage_errors(run_deploy))

    status = subparsers.add_parser(
        "status", parents=[common], help="show a stack's state, outputs and latest events"
    )
    status.set_defaults(func=_usage_errors(run_status))

    outputs = subparsers.add_parser("outputs", parents=[common], help="print a stack's outputs")
    outputs.add_argument("--json", action="store_true", help="print them as a JSON object")
    outputs.set_defaults(func=_usage_errors(run_outputs))

    destroy = subparsers.add_parser(
        "destroy",
        parents=[common, polling],
        help="delete a stack and everything it owns",
        description="Empty the stack's buckets, delete the stack, and wait until it is gone.",
    )
    destroy.add_argument("--yes", action="store_true", help="destroy without typing the name")
    destroy.set_defaults(func=_usage_errors(run_destroy))

    recover = subparsers.add_parser(
        "recover",
        parents=[common, polling],
        help="resume a failed rollback or roll back a stack stuck after a failed deploy",
        description="Bring a stack that an interrupted or failed deploy left behind back to a "
        "state that can be deployed again.",
    )
    how = recover.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--resume",
        action="store_true",
        help="continue a rollback that failed (UPDATE_ROLLBACK_FAILED)",
    )
    how.add_argument(
        "--rollback",
        action="store_true",
        help="roll back a stack whose create or update failed (*_FAILED)",
    )
    recover.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="LOGICAL_ID",
        help="with --resume: a resource to leave as it is (repeatable)",
    )
    recover.set_defaults(func=_usage_errors(run_recover))


def _parameter(text: str) -> tuple[str, str]:
    key, separator, value = text.partition("=")
    if not separator or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key.strip(), value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _usage_errors(command: Callable[[argparse.Namespace], int]):
    """Turn a ConfigurationError (bad parameter, no region, wrong name) into exit code 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except ConfigurationError as error:
            _say_error(str(error))
            return EXIT_USAGE

    run.__doc__ = command.__doc__
    return run


def interactive() -> bool:
    """Whether a person can answer a question on standard input."""
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def ask(prompt: str) -> str:
    return input(prompt)


def _say(text: str = "") -> None:
    print(text, flush=True)


def _say_error(text: str) -> None:
    print(f"classroom-console: {text}", file=sys.stderr, flush=True)


def _target(args: argparse.Namespace) -> AwsTarget:
    return AwsTarget(profile=args.profile, region=args.region, endpoint_url=args.endpoint_url)


def table(rows: Sequence[Sequence[str]], headers: Sequence[str] | None = None) -> str:
    """Columns padded to their widest cell, two spaces apart, indented by two."""
    cells = [[str(cell) for cell in row] for row in rows]
    if headers:
        cells.insert(0, list(headers))
    if not cells:
        return ""
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return "\n".join(
        "  "
        + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def progress_bar(progress: Progress) -> str:
    filled = round(BAR_WIDTH * progress.done / progress.total) if progress.total else BAR_WIDTH
    return f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {progress.done}/{progress.total}"


def event_line(event: StackEvent) -> str:
    line = (
        f"{event.timestamp.astimezone():%H:%M:%S}  {event.status:<30}  "
        f"{event.logical_id} ({event.resource_type})"
    )
    return f"{line}  {event.reason}" if event.reason else line


def _print_outputs(outputs: dict[str, str]) -> None:
    if outputs:
        _say("Outputs:")
        _say(table(sorted(outputs.items()), ("Key", "Value")))


def _print_change_set(plan: Plan) -> None:
    _say(f"Change set {plan.change_set_name} ({plan.kind}) for stack {plan.stack_name}:")
    rows = [
        (
            change.action,
            change.logical_id,
            change.resource_type,
            (change.replacement or "-") if change.action == "Modify" else "-",
        )
        for change in plan.changes
    ]
    if rows:
        _say(table(rows, ("Action", "Resource", "Type", "Replacement")))
    else:
        _say("  (no resource changes; parameters or outputs change)")


def _stream(items, on_result: Callable[[DeployResult], None]) -> None:
    for item in items:
        if isinstance(item, StackEvent):
            _say(event_line(item))
        elif isinstance(item, Progress):
            _say(progress_bar(item))
        elif isinstance(item, DeployResult):
            on_result(item)


def _follow(items, stack_name: str, what: str) -> DeployResult | None:
    """Streams a stack operation; the result, or None after Ctrl-C or no result (already said)."""
    results: list[DeployResult] = []
    try:
        _stream(items, results.append)
    except KeyboardInterrupt:
        _say()
        _say_error(
            f"Stopped watching. {what}; run "
            f"`classroom-console status --stack {stack_name}` to follow it."
        )
        return None
    if not results:
        return None
    result = results[-1]
    if not result.ok:
        failure = (
            result.failure.sentence if result.failure else f"The stack is {result.stack_status}."
        )
        _say_error(failure)
    return result


def _exit_code(result: DeployResult | None) -> int:
    if result is None:
        return EXIT_INTERRUPTED
    return EXIT_OK if result.ok else EXIT_FAILED


def run_deploy(args: argparse.Namespace) -> int:
    """Plan, show, confirm, execute and report one deploy."""
    if not args.yes and not interactive():
        _say_error(
            "Standard input is not a terminal, so the change set cannot be confirmed; "
            "pass --yes to deploy without asking. Nothing was deployed."
        )
        return EXIT_USAGE
    engine = DeployEngine(_target(args), args.stack, poll_interval=args.poll_interval)
    identity = engine.identity
    _say(f"Deploying as {identity.arn} (account {identity.account}, region {engine.region}).")
    plan = engine.plan(dict(args.param), report=lambda step: _say(f"{step}..."))
    if plan.artifact_sha256:
        where = "uploaded to" if plan.artifact_uploaded else "already in"
        _say(
            f"Backend {plan.artifact_sha256[:12]} ({plan.artifact_size / 1e6:.1f} MB) {where} "
            f"s3://{plan.artifact_bucket}/{plan.artifact_key}"
        )
    results: list[DeployResult] = []
    if plan.empty:
        _stream(engine.execute(plan), results.append)
        _say("No changes: the stack is up to date.")
        if results:
            _print_outputs(results[-1].outputs)
        return EXIT_OK
    _print_change_set(plan)
    count = len(plan.changes)
    if not args.yes:
        try:
            answer = ask(f"Deploy these {count} changes to {plan.stack_name}? [y/N] ")
        except EOFError:
            answer = ""
        except KeyboardInterrupt:
            _say()
            engine.discard(plan)
            return EXIT_INTERRUPTED
        if answer.strip().lower() not in ("y", "yes"):
            engine.discard(plan)
            _say("Nothing was deployed; the change set was deleted.")
            return EXIT_FAILED
    result = _follow(
        engine.execute(plan), plan.stack_name, "CloudFormation carries on with the deploy"
    )
    if result is None or not result.ok:
        return _exit_code(result)
    _say(f"Stack {plan.stack_name} is {result.stack_status}.")
    _print_outputs(result.outputs)
    return EXIT_OK


def run_status(args: argparse.Namespace) -> int:
    """Print the stack's state, outputs and latest events; a missing stack is not an error."""
    engine = DeployEngine(_target(args), args.stack)
    status = engine.status()
    if not status.exists:
        _say(f"Stack {args.stack} does not exist in {engine.region}.")
        return EXIT_OK
    updated = (
        f"{status.last_updated.astimezone():%Y-%m-%d %H:%M:%S}" if status.last_updated else "-"
    )
    rows = [("Stack", status.name), ("Status", status.status)]
    if status.reason:
        rows.append(("Reason", status.reason))
    rows += [("Last updated", updated), ("Drift", status.drift or "not checked")]
    _say(table(rows))
    _print_outputs(status.outputs)
    if status.last_events:
        _say("Latest events:")
        for event in status.last_events:
            _say(f"  {event_line(event)}")
    return EXIT_OK


def run_outputs(args: argparse.Namespace) -> int:
    """Print the stack's outputs, as a table or as JSON for scripts."""
    outputs = DeployEngine(_target(args), args.stack).outputs()
    if args.json:
        _say(json.dumps(outputs, indent=2, sort_keys=True))
    elif outputs:
        _say(table(sorted(outputs.items()), ("Key", "Value")))
    else:
        _say(f"Stack {args.stack} has no outputs.")
    return EXIT_OK


def run_destroy(args: argparse.Namespace) -> int:
    """Confirm by name, then empty, delete and wait for the stack to be gone."""
    if not args.yes and not interactive():
        _say_error(
            "Standard input is not a terminal, so the stack name cannot be typed to confirm; "
            "pass --yes to destroy without asking. Nothing was deleted."
        )
        return EXIT_USAGE
    engine = DeployEngine(_target(args), args.stack, poll_interval=args.poll_interval)
    status = engine.status()
    if not status.exists:
        _say(f"Stack {args.stack} does not exist in {engine.region}; there is nothing to destroy.")
        return EXIT_OK
    confirm = args.stack
    _say(
        f"Destroying stack {args.stack} ({status.status}, {engine.region}) and everything it "
        "owns, including the objects in its buckets."
    )
    if not args.yes:
        try:
            confirm = ask("Type the stack name to confirm: ").strip()
        except EOFError:
            confirm = ""
    result = _follow(
        engine.destroy(confirm), args.stack, "If the deletion started, CloudFormation carries on"
    )
    if result is None or not result.ok:
        return _exit_code(result)
    _say(f"Stack {args.stack} is deleted.")
    return EXIT_OK


def run_recover(args: argparse.Namespace) -> int:
    """Resume a failed rollback or roll back, streaming events until the stack settles."""
    if args.skip and not args.resume:
        _say_error("--skip goes with --resume only.")
        return EXIT_USAGE
    engine = DeployEngine(_target(args), args.stack, poll_interval=args.poll_interval)
    items = engine.resume(skip=tuple(args.skip)) if args.resume else engine.rollback()
    result = _follow(items, args.stack, "CloudFormation carries on")
    if result is None or not result.ok:
        return _exit_code(result)
    _say(f"Stack {args.stack} is {result.stack_status}; it can be deployed again.")
    return EXIT_OK
