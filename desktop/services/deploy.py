"""The deploy engine: package, change set, execute, watch, tear down; plain Python, no Qt.

    engine = DeployEngine(AwsTarget(profile="school", region="eu-west-1"), "classroom-prod")
    plan = engine.plan({"Stage": "prod"})       # the change set, shown to the user first
    for item in engine.execute(plan, abort):    # StackEvent | Progress | DeployResult
        ...

The long operations (``execute``, ``destroy``, ``resume``, ``rollback``) are generator functions:
nothing runs until the first ``next()``, so a worker can run them off the GUI thread and check
its abort flag between items. Aborting stops watching; CloudFormation carries on. Every AWS
failure arrives as a ``ConsoleError`` whose ``str()`` is a sentence.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml
from botocore.exceptions import ClientError

from desktop.services import packaging
from desktop.services.aws import AwsTarget, CallerIdentity, aws_errors, caller_identity, client
from desktop.services.aws import region_of as _region_of
from desktop.services.errors import ConfigurationError, ConsoleError, DeployError
from desktop.services.outputs_store import OutputsStore, environment_key

log = logging.getLogger(__name__)

CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
ARTIFACT_PARAMETERS = ("ArtifactBucket", "ArtifactKey")
TEMPLATE_BODY_LIMIT = 51_200  # bytes CloudFormation accepts inline; larger templates go via S3
DOES_NOT_EXIST = "DOES_NOT_EXIST"
DEPLOYED = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"})
# CloudFormation allows 128 characters, but the template names its functions
# ``<stack>-<function>`` and Lambda allows 64: "-authorizer" leaves 53.
STACK_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,52}")
NO_CHANGES = ("didn't contain changes", "no updates are to be performed")
EMPTIED = "EMPTY_COMPLETE"  # the console's own event status: a bucket emptied before deletion
RECENT_EVENTS = 10


@dataclass(frozen=True)
class Change:
    """One row of a change set: what CloudFormation will do to one resource."""

    action: str
    logical_id: str
    resource_type: str
    replacement: str | None = None


@dataclass
class Plan:
    """A change set waiting for the user's yes; ``empty`` means the stack is already up to date."""

    stack_name: str
    change_set_name: str
    change_set_id: str
    kind: str
    changes: list[Change] = field(default_factory=list)
    empty: bool = False
    stack_id: str | None = None
    artifact_sha256: str | None = None
    artifact_size: int = 0
    artifact_bucket: str | None = None
    artifact_key: str | None = None
    artifact_uploaded: bool = False


@dataclass(frozen=True)
class StackEvent:
    timestamp: datetime
    logical_id: str
    resource_type: str
    status: str
    reason: str | None = None


@dataclass(frozen=True)
class Progress:
    """Resources settled so far out of those the operation touches (plus the stack itself)."""

    done: int
    total: int


@dataclass(frozen=True)
class Failure:
    """The first resource that failed, and where the stack ended up because of it."""

    logical_id: str
    resource_type: str
    reason: str
    rollback_status: str

    @property
    def sentence(self) -> str:
        reason = (self.reason or "no reason given").strip().rstrip(".")
        if self.resource_type == "AWS::CloudFormation::Stack":
            first = f"Stack {self.logical_id} failed: {reason}."
        else:
            first = f"Resource {self.logical_id} ({self.resource_type}) failed: {reason}."
        status = self.rollback_status
        if status.endswith("ROLLBACK_COMPLETE"):
            return f"{first} The stack rolled back ({status})."
        if status.endswith("ROLLBACK_FAILED"):
            return (
                f"{first} The rollback failed too ({status}); resume the rollback, "
                "or destroy the stack."
            )
        return f"{first} The stack is now {status}."


@dataclass(frozen=True)
class DeployResult:
    ok: bool
    stack_status: str
    outputs: dict[str, str]
    failure: Failure | None = None


@dataclass(frozen=True)
class StackStatus:
    """A stack as the console shows it; ``status`` is ``DOES_NOT_EXIST`` for a missing stack."""

    name: str
    status: str
    reason: str | None
    outputs: dict[str, str]
    last_events: list[StackEvent]
    last_updated: datetime | None
    drift: str | None

    @property
    def exists(self) -> bool:
        return self.status != DOES_NOT_EXIST


def default_source_root() -> Path:
    """The folder holding the ``backend`` package this console ships (the repo root in dev)."""
    spec = importlib.util.find_spec("backend")
    if spec is None or spec.origin is None:
        raise ConfigurationError(
            "The backend package is not installed with the console.",
            hint="Reinstall Classroom Console.",
        )
    return Path(spec.origin).resolve().parent.parent


class _TemplateLoader(yaml.SafeLoader):
    """YAML that reads CloudFormation's short forms as their long ones: ``!Ref x`` as
    ``{"Ref": x}``, ``!Name v`` as ``{"Fn::Name": v}``, ``!GetAtt a.b`` as
    ``{"Fn::GetAtt": [a, b]}``."""


def _short_form(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict:
    value: object
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":  # the long form is a list: [resource, attribute]
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # YAML has no other kind of node
        raise yaml.constructor.ConstructorError(
            problem=f"!{suffix} on an unknown kind of node", problem_mark=node.start_mark
        )
    return {"Ref" if suffix == "Ref" else f"Fn::{suffix}": value}


_TemplateLoader.add_multi_constructor("!", _short_form)


def load_template(text: str, source: str = "The template") -> dict:
    """A CloudFormation template (YAML or JSON) as a dict, or a sentence saying what is wrong."""
    try:
        template = yaml.load(text, Loader=_TemplateLoader)  # a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigurationError(
            f"{source} is not valid YAML{where}.", hint="Fix it and deploy again."
        ) from error
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise ConfigurationError(
            f"{source} has no Resources section.",
            hint="Check that it is a CloudFormation template.",
        )
    return template


def template_parameters(template: dict) -> dict[str, str | None]:
    """Each declared parameter and its default (None: the user must give a value)."""
    declared = template.get("Parameters") or {}
    return {
        name: (str(spec["Default"]) if isinstance(spec, dict) and "Default" in spec else None)
        for name, spec in declared.items()
    }


def _is_settled(status: str) -> bool:
    return status.endswith(("_COMPLETE", "_FAILED")) or "SKIPPED" in status


def _is_terminal(status: str) -> bool:
    return not status.endswith("_IN_PROGRESS")


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", ""))


def _event(raw: dict) -> StackEvent:
    return StackEvent(
        timestamp=raw["Timestamp"],
        logical_id=raw.get("LogicalResourceId", ""),
        resource_type=raw.get("ResourceType", ""),
        status=raw.get("ResourceStatus", ""),
        reason=raw.get("ResourceStatusReason"),
    )


def websocket_url(outputs: Mapping[str, object]) -> str | None:
    """The WebSocket URL among a stack's outputs: a ``ws://``/``wss://`` value, by name first."""
    candidates = [(str(name), str(value)) for name, value in outputs.items() if value]
    for _name, value in sorted(candidates, key=lambda item: "websocket" not in item[0].lower()):
        if value.startswith(("wss://", "ws://")):
            return value
    return None


def _outputs(stack: dict | None) -> dict[str, str]:
    if not stack:
        return {}
    return {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs") or []}


class DeployEngine:
    """Deploys, watches and tears down one stack at one AWS target."""

    def __init__(
        self,
        target: AwsTarget,
        stack_name: str,
        template_path: Path | str | None = None,
        source_root: Path | str | None = None,
        *,
        poll_interval: float = 3.0,
        store: OutputsStore | None = None,
        change_set_timeout: float = 900.0,
    ) -> None:
        if not STACK_NAME.fullmatch(stack_name or ""):
            raise ConfigurationError(
                f"{stack_name!r} is not a valid stack name.",
                hint="Use up to 53 letters, digits and hyphens, starting with a letter (the "
                "stack's functions are named after it, and Lambda names are limited to 64).",
            )
        self.target = target
        self.stack_name = stack_name
        self.source_root = Path(source_root) if source_root else default_source_root()
        self.template_path = (
            Path(template_path) if template_path else self.source_root / "backend" / "template.yaml"
        )
        self.poll_interval = poll_interval
        self.change_set_timeout = change_set_timeout
        self.store = store if store is not None else OutputsStore()
        self._clients: dict[str, object] = {}
        self._identity: CallerIdentity | None = None
        self._region: str | None = None

    # -- who and where -------------------------------------------------------------------------

    def _client(self, service: str):
        if service not in self._clients:
            self._clients[service] = client(self.target, service)
        return self._clients[service]

    @property
    def identity(self) -> CallerIdentity:
        """The account and principal the deploy runs as (one STS call, then remembered)."""
        if self._identity is None:
            self._identity = caller_identity(self.target, self._client("sts"))
        return self._identity

    @property
    def region(self) -> str:
        if self._region is None:
            self._region = _region_of(self.target)
        return self._region

    @property
    def environment(self) -> str:
        """The key this stack's outputs are remembered under."""
        return environment_key(self.identity.account, self.region, self.stack_name)

    # -- plan and execute ----------------------------------------------------------------------

    def plan(
        self, parameters: dict[str, str] | None = None, report: Callable[[str], None] | None = None
    ) -> Plan:
        """Package and upload the backend, then create and describe a change set (not run yet)."""
        report = report or (lambda step: None)
        given = dict(parameters or {})
        template_text = self._read_template()
        declared = template_parameters(load_template(template_text, str(self.template_path)))
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise ConfigurationError(
                f"The template has no parameter {', '.join(unknown)}.",
                hint=f"It declares: {', '.join(declared) or 'no parameters'}.",
            )
        reserved = sorted(set(given) & set(ARTIFACT_PARAMETERS))
        if reserved:
            raise ConfigurationError(
                f"{' and '.join(reserved)} are set by the deploy from the packaged backend.",
                hint="Leave them out.",
            )
        with aws_errors(self.target):
            stack = self._describe(self.stack_name)
            kind = self._change_set_kind(stack)
            previous = {p["ParameterKey"] for p in (stack or {}).get("Parameters") or []}
            missing = [
                name
                for name, default in declared.items()
                if default is None
                and name not in given
                and name not in ARTIFACT_PARAMETERS
                and not (kind == "UPDATE" and name in previous)
            ]
            if missing:
                raise ConfigurationError(
                    f"The template needs a value for {', '.join(missing)}.",
                    hint="Pass each as NAME=VALUE (--param on the command line).",
                )
            report(f"Packaging the backend from {self.source_root / 'backend'}")
            artifact = packaging.build_artifact(self.source_root)
            s3 = self._client("s3")
            account = self.identity.account
            bucket = packaging.ensure_bucket(self.target, s3=s3, account=account)
            report(f"Uploading the backend ({artifact.size / 1e6:.1f} MB) to s3://{bucket}")
            uploaded = packaging.upload(
                self.target, artifact, s3=s3, bucket=bucket, account=account
            )
            values = dict(given)
            if "ArtifactBucket" in declared:
                values["ArtifactBucket"] = uploaded.bucket
            if "ArtifactKey" in declared:
                values["ArtifactKey"] = uploaded.key
            parameter_list: list[dict[str, str | bool]] = []
            for name in declared:
                if name in values:
                    parameter_list.append({"ParameterKey": name, "ParameterValue": values[name]})
                elif kind == "UPDATE" and name in previous:
                    parameter_list.append({"ParameterKey": name, "UsePreviousValue": True})
            body = template_text.encode("utf-8")
            if len(body) <= TEMPLATE_BODY_LIMIT:
                source = {"TemplateBody": template_text}
            else:
                source = {
                    "TemplateURL": packaging.upload_template(
                        self.target, body, s3=s3, bucket=bucket, account=account
                    )
                }
            name = f"classroom-console-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
            plan = Plan(
                stack_name=self.stack_name,
                change_set_name=name,
                change_set_id="",
                kind=kind,
                stack_id=(stack or {}).get("StackId"),
                artifact_sha256=artifact.sha256,
                artifact_size=artifact.size,
                artifact_bucket=uploaded.bucket,
                artifact_key=uploaded.key,
                artifact_uploaded=uploaded.uploaded,
            )
            report(f"Creating change set {name} ({kind})")
            cfn = self._client("cloudformation")
            try:
                created = cfn.create_change_set(
                    StackName=self.stack_name,
                    ChangeSetName=name,
                    ChangeSetType=kind,
                    Parameters=parameter_list,
                    Capabilities=CAPABILITIES,
                    Description=f"Classroom Console: backend {artifact.sha256[:12]}",
                    **source,
                )
            except ClientError as error:
                if any(marker in _message(error).lower() for marker in NO_CHANGES):
                    plan.empty = True
                    return plan
                if _code(error) == "ValidationError":
                    raise DeployError(
                        f"CloudFormation rejected the deploy of stack {self.stack_name}: "
                        f"{_message(error).rstrip('.')}.",
                        hint="Fix the template or parameters and deploy again.",
                    ) from error
                raise
            plan.change_set_id = created["Id"]
            plan.stack_id = created.get("StackId") or plan.stack_id
            described = self._wait_for_change_set(plan.change_set_id)
            if described["Status"] == "FAILED":
                reason = described.get("StatusReason") or "no reason given"
                self._delete_change_set(plan.change_set_id)
                if any(marker in reason.lower() for marker in NO_CHANGES):
                    plan.empty = True
                    return plan
                raise DeployError(
                    f"CloudFormation could not prepare the change set for stack "
                    f"{self.stack_name}: {reason.rstrip('.')}.",
                    hint="Fix the template or parameters and deploy again.",
                )
            plan.changes = [
                Change(
                    action=rc.get("Action", ""),
                    logical_id=rc.get("LogicalResourceId", ""),
                    resource_type=rc.get("ResourceType", ""),
                    replacement=rc.get("Replacement"),
                )
                for rc in (
                    change.get("ResourceChange") or {}
                    for change in described.get("Changes", [])
                    if change.get("Type", "Resource") == "Resource"
                )
            ]
            return plan

    def discard(self, plan: Plan) -> None:
        """Delete a change set the user declined, and the empty stack a CREATE one made."""
        if plan.empty or not plan.change_set_id:
            return
        with aws_errors(self.target):
            self._delete_change_set(plan.change_set_id)
            if plan.kind == "CREATE" and plan.stack_id:
                stack = self._describe(plan.stack_id)
                if stack and stack["StackStatus"] == "REVIEW_IN_PROGRESS":
                    self._client("cloudformation").delete_stack(StackName=plan.stack_id)

    def execute(
        self, plan: Plan, abort: threading.Event | None = None
    ) -> Iterator[StackEvent | Progress | DeployResult]:
        """Run the change set and stream its events until the stack settles."""
        with aws_errors(self.target):
            if plan.empty:
                stack = self._describe(self.stack_name)
                status = stack["StackStatus"] if stack else DOES_NOT_EXIST
                ok = status in DEPLOYED or status == "UPDATE_ROLLBACK_COMPLETE"
                yield DeployResult(ok=ok, stack_status=status, outputs=_outputs(stack))
                return
            stack_id = plan.stack_id or self.stack_name
            before = self._describe(stack_id)
            seen = self._event_ids(stack_id)
            try:
                self._client("cloudformation").execute_change_set(ChangeSetName=plan.change_set_id)
            except ClientError as error:
                if _code(error) in ("InvalidChangeSetStatus", "ChangeSetNotFound"):
                    raise DeployError(
                        f"The change set for stack {self.stack_name} can no longer run "
                        f"({_message(error).rstrip('.')}).",
                        hint="Plan the deploy again and review the new changes.",
                    ) from error
                raise
            tracked = {change.logical_id for change in plan.changes} | {self.stack_name}
            result = None
            for item in self._watch(
                stack_id,
                seen,
                before["StackStatus"] if before else None,
                tracked,
                len(plan.changes) + 1,
                DEPLOYED,
                abort,
            ):
                if isinstance(item, DeployResult):
                    result = item
                yield item
            if result is not None and result.ok:
                self._remember(result.outputs)

    # -- watching ------------------------------------------------------------------------------

    def _watch(
        self,
        stack_id: str,
        seen: set[str],
        before: str | None,
        tracked: set[str],
        total: int,
        success: frozenset[str] | set[str],
        abort: threading.Event | None,
    ) -> Iterator[StackEvent | Progress | DeployResult]:
        settled: set[str] = set()
        first_failure: StackEvent | None = None
        stack_failure: StackEvent | None = None
        progress = Progress(0, total)
        yield progress
        finished = finishing = False
        while True:
            if abort is not None and abort.is_set():
                return
            for raw in self._new_events(stack_id, seen):
                event = _event(raw)
                yield event
                if abort is not None and abort.is_set():
                    return
                is_stack = raw.get("PhysicalResourceId") == stack_id or (
                    event.resource_type == "AWS::CloudFormation::Stack"
                    and event.logical_id == self.stack_name
                )
                if event.logical_id in tracked and _is_settled(event.status):
                    settled.add(event.logical_id)
                if event.status.endswith("_FAILED"):
                    cancelled = "cancelled" in (event.reason or "").lower()
                    if is_stack:
                        stack_failure = stack_failure or event
                    elif first_failure is None and not cancelled:
                        first_failure = event
                if is_stack and _is_terminal(event.status):
                    finished = True
            current = Progress(min(len(settled), total), total)
            if current != progress:
                progress = current
                yield progress
            if finished or finishing:
                break
            stack = self._describe(stack_id)
            status = stack["StackStatus"] if stack else "DELETE_COMPLETE"
            if _is_terminal(status) and status != before:
                finishing = True  # read the last events once more, then stop
                continue
            if abort is not None:
                if abort.wait(self.poll_interval):
                    return
            else:
                time.sleep(self.poll_interval)
        stack = self._describe(stack_id)
        status = stack["StackStatus"] if stack else "DELETE_COMPLETE"
        ok = status in success
        if ok and progress.done < total:
            yield Progress(total, total)
        failure = None
        if not ok:
            culprit = first_failure or stack_failure
            if culprit is not None:
                failure = Failure(
                    culprit.logical_id,
                    culprit.resource_type,
                    culprit.reason or "no reason given",
                    status,
                )
            else:
                failure = Failure(
                    self.stack_name,
                    "AWS::CloudFormation::Stack",
                    (stack or {}).get("StackStatusReason") or "no reason given",
                    status,
                )
        outputs = {} if status == "DELETE_COMPLETE" else _outputs(stack)
        yield DeployResult(ok=ok, stack_status=status, outputs=outputs, failure=failure)

    def _event_ids(self, stack_id: str) -> set[str]:
        """The events already there, so a watch shows only what happens from now on."""
        try:
            page = self._client("cloudformation").describe_stack_events(StackName=stack_id)
        except ClientError as error:
            if "does not exist" in _message(error):
                return set()
            raise
        return {raw["EventId"] for raw in page.get("StackEvents", [])}

    def _new_events(self, stack_id: str, seen: set[str]) -> list[dict]:
        """Events not seen before, oldest first; pages back only until it meets a seen one."""
        cfn = self._client("cloudformation")
        fresh: dict[str, dict] = {}
        token = None
        while True:
            request = {"StackName": stack_id}
            if token:
                request["NextToken"] = token
            page = cfn.describe_stack_events(**request)
            met_seen = False
            for raw in page.get("StackEvents", []):
                if raw["EventId"] in seen:
                    met_seen = True
                else:
                    fresh.setdefault(raw["EventId"], raw)
            token = page.get("NextToken")
            if met_seen or not token:
                break
        seen.update(fresh)
        oldest_first = reversed(list(fresh.values()))  # the API lists newest first
        return sorted(oldest_first, key=lambda raw: raw["Timestamp"])

    # -- state ---------------------------------------------------------------------------------

    def status(self) -> StackStatus:
        """The stack's state, outputs and latest events; a missing stack is a state, not an error."""
        with aws_errors(self.target):
            stack = self._describe(self.stack_name)
            if stack is None:
                return StackStatus(self.stack_name, DOES_NOT_EXIST, None, {}, [], None, None)
            page = self._client("cloudformation").describe_stack_events(StackName=stack["StackId"])
            recent = [_event(raw) for raw in page.get("StackEvents", [])[:RECENT_EVENTS]]
            recent.sort(key=lambda event: event.timestamp)
            outputs = _outputs(stack)
            if (
                stack["StackStatus"] in DEPLOYED
                or stack["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
            ):
                self._remember(outputs)
            return StackStatus(
                name=self.stack_name,
                status=stack["StackStatus"],
                reason=stack.get("StackStatusReason"),
                outputs=outputs,
                last_events=recent,
                last_updated=stack.get("LastUpdatedTime") or stack.get("CreationTime"),
                drift=(stack.get("DriftInformation") or {}).get("StackDriftStatus"),
            )

    def outputs(self) -> dict[str, str]:
        """The stack's outputs (endpoint URLs, function names) as deployed now."""
        with aws_errors(self.target):
            stack = self._describe(self.stack_name)
            if stack is None:
                raise DeployError(
                    f"Stack {self.stack_name} does not exist in {self.region}.",
                    hint="Deploy it first, or check the profile and region.",
                )
            return _outputs(stack)

    def remembered_outputs(self) -> dict[str, str] | None:
        """The outputs saved after the last deploy here, without asking CloudFormation."""
        return self.store.load(self.environment)

    def _remember(self, outputs: dict[str, str]) -> None:
        try:
            self.store.save(self.environment, outputs)
        except ConsoleError as error:
            log.warning("stack outputs not saved: %s", error)

    # -- recovery ------------------------------------------------------------------------------

    def cancel(self) -> str:
        """Cancel an update in progress (it rolls back); says why when that is not possible."""
        with aws_errors(self.target):
            stack = self._require_stack("there is nothing to cancel")
            status = stack["StackStatus"]
            if status == "UPDATE_IN_PROGRESS":
                self._client("cloudformation").cancel_update_stack(StackName=stack["StackId"])
                return (
                    f"Cancelling the update of stack {self.stack_name}; CloudFormation will roll "
                    "it back to its last working state."
                )
            if status == "CREATE_IN_PROGRESS":
                raise DeployError(
                    f"Stack {self.stack_name} is being created, and CloudFormation cannot cancel "
                    "a creation.",
                    hint="Wait for it to finish or roll back, then destroy it if you do not want it.",
                )
            if status.endswith("_IN_PROGRESS"):
                raise DeployError(
                    f"Stack {self.stack_name} is {status}; only an update in progress can be "
                    "cancelled.",
                    hint="Wait for it to finish.",
                )
            raise DeployError(
                f"Stack {self.stack_name} is not being updated ({status}), so there is nothing "
                "to cancel."
            )

    def resume(
        self, skip: list[str] | tuple[str, ...] = (), abort: threading.Event | None = None
    ) -> Iterator[StackEvent | Progress | DeployResult]:
        """Continue a rollback that failed (UPDATE_ROLLBACK_FAILED), skipping ``skip`` resources."""
        with aws_errors(self.target):
            stack = self._require_stack("there is nothing to resume")
            status = stack["StackStatus"]
            if status != "UPDATE_ROLLBACK_FAILED":
                raise DeployError(
                    f"Stack {self.stack_name} is {status}; only a stack whose rollback failed "
                    "(UPDATE_ROLLBACK_FAILED) can be resumed."
                )
            stack_id = stack["StackId"]
            seen = self._event_ids(stack_id)
            request = {"StackName": stack_id}
            if skip:
                request["ResourcesToSkip"] = list(skip)
            self._client("cloudformation").continue_update_rollback(**request)
            yield from self._watch(
                stack_id,
                seen,
                status,
                {self.stack_name, *skip},
                1 + len(skip),
                {"UPDATE_ROLLBACK_COMPLETE"},
                abort,
            )

    def rollback(
        self, abort: threading.Event | None = None
    ) -> Iterator[StackEvent | Progress | DeployResult]:
        """Roll a stack left in CREATE_FAILED or UPDATE_FAILED back to its last working state."""
        with aws_errors(self.target):
            stack = self._require_stack("there is nothing to roll back")
            status = stack["StackStatus"]
            if status == "UPDATE_IN_PROGRESS":
                raise DeployError(
                    f"Stack {self.stack_name} is still updating.",
                    hint="Cancel the update instead; CloudFormation then rolls it back.",
                )
            if status == "UPDATE_ROLLBACK_FAILED":
                raise DeployError(
                    f"Stack {self.stack_name} already tried to roll back and failed.",
                    hint="Resume the rollback instead.",
                )
            if status not in ("CREATE_FAILED", "UPDATE_FAILED"):
                raise DeployError(
                    f"Stack {self.stack_name} is {status}; CloudFormation can only roll back a "
                    "stack in CREATE_FAILED or UPDATE_FAILED."
                )
            stack_id = stack["StackId"]
            seen = self._event_ids(stack_id)
            self._client("cloudformation").rollback_stack(StackName=stack_id)
            yield from self._watch(
                stack_id,
                seen,
                status,
                {self.stack_name},
                1,
                {"ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "DELETE_COMPLETE"},
                abort,
            )

    # -- teardown ------------------------------------------------------------------------------

    def destroy(
        self, confirm_name: str, abort: threading.Event | None = None
    ) -> Iterator[StackEvent | Progress | DeployResult]:
        """Delete the stack and what it owns, emptying its buckets first; needs its exact name."""
        if confirm_name != self.stack_name:
            raise ConfigurationError(
                f"The name typed ({confirm_name!r}) is not the stack's name ({self.stack_name}); "
                "nothing was deleted.",
                hint="Type the stack name exactly to confirm.",
            )
        with aws_errors(self.target):
            stack = self._describe(self.stack_name)
            if stack is None:
                self._forget()
                yield DeployResult(ok=True, stack_status=DOES_NOT_EXIST, outputs={})
                return
            status = stack["StackStatus"]
            stack_id = stack["StackId"]
            if stack.get("EnableTerminationProtection"):
                raise DeployError(
                    f"Stack {self.stack_name} has termination protection turned on.",
                    hint="Turn it off in the CloudFormation console (Stack actions), then "
                    "destroy it again.",
                )
            if status.endswith("_IN_PROGRESS") and status not in (
                "REVIEW_IN_PROGRESS",
                "DELETE_IN_PROGRESS",
            ):
                raise DeployError(
                    f"Stack {self.stack_name} is busy ({status}).",
                    hint="Wait for it to finish, then destroy it.",
                )
            seen = self._event_ids(stack_id)
            reviewing = status == "REVIEW_IN_PROGRESS"  # a change set only: nothing created yet
            resources = [] if reviewing else self._resources(stack_id)
            owned = [] if reviewing else self._owned_buckets(stack_id, resources)
            for logical_id, bucket in owned:
                count = self._empty_bucket(bucket, abort)
                if count is None:
                    return
                if not count:
                    continue
                yield StackEvent(
                    timestamp=datetime.now(UTC),
                    logical_id=logical_id,
                    resource_type="AWS::S3::Bucket",
                    status=EMPTIED,
                    reason=f"Deleted {count} object versions from {bucket} so CloudFormation "
                    "can delete it.",
                )
                if abort is not None and abort.is_set():
                    return
            if status != "DELETE_IN_PROGRESS":
                self._client("cloudformation").delete_stack(StackName=stack_id)
            tracked = {summary["LogicalResourceId"] for summary in resources} | {self.stack_name}
            result = None
            for item in self._watch(
                stack_id, seen, status, tracked, len(tracked), {"DELETE_COMPLETE"}, abort
            ):
                if isinstance(item, DeployResult):
                    result = item
                yield item
            if result is not None and result.ok:
                self._forget()

    def _forget(self) -> None:
        try:
            self.store.forget(self.environment)
        except ConsoleError as error:
            log.warning("stack outputs not forgotten: %s", error)

    def _resources(self, stack_id: str) -> list[dict]:
        paginator = self._client("cloudformation").get_paginator("list_stack_resources")
        return [
            summary
            for page in paginator.paginate(StackName=stack_id)
            for summary in page.get("StackResourceSummaries", [])
            if summary.get("LogicalResourceId")
        ]

    def _owned_buckets(self, stack_id: str, resources: list[dict]) -> list[tuple[str, str]]:
        """Buckets CloudFormation will delete with the stack (not those it retains)."""
        body = self._client("cloudformation").get_template(
            StackName=stack_id, TemplateStage="Processed"
        )["TemplateBody"]
        template = body if isinstance(body, dict) else load_template(body, "The stack's template")
        deletable = {
            logical_id
            for logical_id, spec in (template.get("Resources") or {}).items()
            if isinstance(spec, dict)
            and spec.get("Type") == "AWS::S3::Bucket"
            and spec.get("DeletionPolicy", "Delete") == "Delete"
        }
        return sorted(
            (summary["LogicalResourceId"], summary["PhysicalResourceId"])
            for summary in resources
            if summary["LogicalResourceId"] in deletable
            and summary.get("PhysicalResourceId")
            and summary.get("ResourceStatus") != "DELETE_COMPLETE"
        )

    def _empty_bucket(self, bucket: str, abort: threading.Event | None) -> int | None:
        """Delete every object version and delete marker; None when aborted part way."""
        s3 = self._client("s3")
        deleted = 0
        try:
            for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
                versions = page.get("Versions", []) + page.get("DeleteMarkers", [])
                objects = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in versions]
                for start in range(0, len(objects), 1000):
                    if abort is not None and abort.is_set():
                        return None
                    batch = objects[start : start + 1000]
                    answer = s3.delete_objects(
                        Bucket=bucket, Delete={"Objects": batch, "Quiet": True}
                    )
                    errors = answer.get("Errors") or []
                    if errors:
                        raise DeployError(
                            f"Could not empty bucket {bucket}: {errors[0].get('Key')}: "
                            f"{errors[0].get('Message', errors[0].get('Code'))}.",
                            hint="Check the bucket's object lock and your s3:DeleteObjectVersion "
                            "permission.",
                        )
                    deleted += len(batch)
        except ClientError as error:
            if _code(error) == "NoSuchBucket":
                return deleted
            raise
        return deleted

    # -- helpers -------------------------------------------------------------------------------

    def _read_template(self) -> str:
        try:
            return self.template_path.read_text(encoding="utf-8")
        except FileNotFoundError as error:
            raise ConfigurationError(
                f"The CloudFormation template {self.template_path} is missing.",
                hint="Reinstall Classroom Console, or point the deploy at the right template.",
            ) from error
        except OSError as error:
            raise ConfigurationError(
                f"Could not read the template {self.template_path} ({error.strerror})."
            ) from error

    def _describe(self, name_or_id: str) -> dict | None:
        try:
            stacks = self._client("cloudformation").describe_stacks(StackName=name_or_id)
        except ClientError as error:
            if _code(error) == "ValidationError" and "does not exist" in _message(error):
                return None
            raise
        found = stacks.get("Stacks") or []
        return found[0] if found else None

    def _require_stack(self, consequence: str) -> dict:
        stack = self._describe(self.stack_name)
        if stack is None:
            raise DeployError(f"Stack {self.stack_name} does not exist, so {consequence}.")
        return stack

    def _change_set_kind(self, stack: dict | None) -> str:
        if stack is None or stack["StackStatus"] == "REVIEW_IN_PROGRESS":
            return "CREATE"
        status = stack["StackStatus"]
        name = self.stack_name
        if status == "ROLLBACK_COMPLETE":
            raise DeployError(
                f"Stack {name} failed to create and rolled back (ROLLBACK_COMPLETE), so it "
                "cannot be updated.",
                hint="Destroy it, then deploy again.",
            )
        if status in ("ROLLBACK_FAILED", "DELETE_FAILED"):
            raise DeployError(
                f"Stack {name} is broken ({status}).", hint="Destroy it, then deploy again."
            )
        if status == "UPDATE_ROLLBACK_FAILED":
            raise DeployError(
                f"Stack {name} could not roll back its last update (UPDATE_ROLLBACK_FAILED).",
                hint="Resume the rollback, then deploy again.",
            )
        if status in ("CREATE_FAILED", "UPDATE_FAILED"):
            raise DeployError(
                f"Stack {name} stopped after a failure without rolling back ({status}).",
                hint="Roll it back, then deploy again.",
            )
        if status.endswith("_IN_PROGRESS"):
            raise DeployError(
                f"Stack {name} is busy ({status}).",
                hint="Wait for it to finish, then deploy again.",
            )
        return "UPDATE"

    def _wait_for_change_set(self, change_set_id: str) -> dict:
        cfn = self._client("cloudformation")
        deadline = time.monotonic() + self.change_set_timeout
        while True:
            described = cfn.describe_change_set(ChangeSetName=change_set_id)
            if described["Status"] in ("CREATE_COMPLETE", "FAILED"):
                changes = list(described.get("Changes", []))
                token = described.get("NextToken")
                while token:
                    page = cfn.describe_change_set(ChangeSetName=change_set_id, NextToken=token)
                    changes.extend(page.get("Changes", []))
                    token = page.get("NextToken")
                described["Changes"] = changes
                return described
            if time.monotonic() > deadline:
                raise DeployError(
                    f"CloudFormation took more than {self.change_set_timeout / 60:.0f} minutes to "
                    f"prepare the change set for stack {self.stack_name}.",
                    hint="Look at the change set in the CloudFormation console, or try again.",
                )
            time.sleep(self.poll_interval)

    def _delete_change_set(self, change_set_id: str) -> None:
        try:
            self._client("cloudformation").delete_change_set(ChangeSetName=change_set_id)
        except ClientError as error:
            log.info("change set %s not deleted: %s", change_set_id, error)
