"""moto's CloudFormation, made to run stacks the way CloudFormation does, for the deploy tests.

moto 5 runs a change set inside the ExecuteChangeSet call, records events only for the stack
itself, raises a failing resource's error from ExecuteChangeSet instead of rolling back, leaves
stacks made from change sets without outputs, and deletes a stack whose bucket still holds
objects. CloudFormation answers at once and works in the background, one event per resource, rolls
back after the first failure, and refuses to delete a bucket that is not empty. ``install``
patches moto's backend (its server runs in this process) to do the same, with moto's own
resources underneath: a failure a test sees is moto's (e.g. S3 refusing a bucket name that is
taken). Only what the deploy engine relies on is modelled; an update's rollback does not undo
resource changes.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict

import pytest

STEP = 0.02  # seconds between one resource event and the next


def install(monkeypatch: pytest.MonkeyPatch, step: float = STEP) -> None:
    """Patch moto's CloudFormation backend for the current test only."""
    from moto.cloudformation import models, parsing
    from moto.cloudformation.exceptions import ValidationError
    from moto.s3.models import s3_backends

    created: dict[str, list[tuple[str, str]]] = defaultdict(list)
    original_create = parsing.parse_and_create_resource
    original_update = parsing.parse_and_update_resource

    def stack_of(resources_map):
        backend = models.cloudformation_backends[resources_map._account_id][
            resources_map._region_name
        ]
        return backend.stacks.get(resources_map.stack_id)

    def record(stack, logical_id, resource_type, status, reason=None, physical_id=""):
        stack.events.append(
            models.Event(
                stack_id=stack.stack_id,
                stack_name=stack.name,
                logical_resource_id=logical_id,
                physical_resource_id=physical_id or "",
                resource_type=resource_type,
                resource_status=status,
                resource_status_reason=reason,
                resource_properties=None,
            )
        )
        time.sleep(step)

    def reason_of(error: Exception) -> str:
        return str(getattr(error, "message", None) or error)

    def tracked(original, verb):
        def wrapper(logical_id, resource_json, resources_map, account_id, region_name):
            stack = stack_of(resources_map)
            if stack is None:
                return original(logical_id, resource_json, resources_map, account_id, region_name)
            kind = resource_json.get("Type", "")
            record(stack, logical_id, kind, f"{verb}_IN_PROGRESS")
            try:
                resource = original(
                    logical_id, resource_json, resources_map, account_id, region_name
                )
            except Exception as error:
                record(stack, logical_id, kind, f"{verb}_FAILED", reason_of(error))
                raise
            physical_id = getattr(resource, "physical_resource_id", "")
            record(stack, logical_id, kind, f"{verb}_COMPLETE", physical_id=physical_id)
            if verb == "CREATE":
                created[stack.stack_id].append((logical_id, kind))
            return resource

        return wrapper

    def run_change_set(stack, change_set, kind):
        time.sleep(step)
        try:
            change_set.apply()
        except Exception:
            failed = [
                e.logical_resource_id for e in stack.events if e.resource_status.endswith("_FAILED")
            ]
            verb = "create" if kind == "CREATE" else "update"
            prefix = "" if kind == "CREATE" else "UPDATE_"
            stack.status = f"{prefix}ROLLBACK_IN_PROGRESS"
            stack._add_stack_event(
                stack.status,
                f"The following resource(s) failed to {verb}: [{', '.join(failed)}]. "
                "Rollback requested by user.",
            )
            if kind == "CREATE":
                with contextlib.suppress(Exception):  # a rollback deletes what it can
                    stack.resource_map.delete()
                for logical_id, resource_type in reversed(created[stack.stack_id]):
                    record(stack, logical_id, resource_type, "DELETE_COMPLETE")
            stack.status = f"{prefix}ROLLBACK_COMPLETE"
            stack._add_stack_event(stack.status)
            change_set.execution_status = "EXECUTE_FAILED"
            return
        stack.template = change_set.template
        stack._parse_template()
        stack.parameters = dict(stack.resource_map.resolved_parameters)
        stack.output_map = stack._create_output_map()
        if kind == "UPDATE":
            stack._add_stack_event("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
        stack.status = f"{kind}_COMPLETE"
        stack._add_stack_event(stack.status)
        change_set.execution_status = "EXECUTE_COMPLETE"

    def execute_change_set(self, change_set_name, stack_name=None):
        change_set = self.describe_change_set(change_set_name)
        if change_set.execution_status != "AVAILABLE":
            raise ValidationError(
                change_set_name,
                message=f"ChangeSet [{change_set.change_set_id}] cannot be executed in its "
                f"current execution status of [{change_set.execution_status}]",
            )
        stack = self.stacks[change_set.stack_id]
        kind = change_set.change_set_type
        change_set.execution_status = "EXECUTE_IN_PROGRESS"
        stack.status = f"{kind}_IN_PROGRESS"
        stack._add_stack_event(stack.status, resource_status_reason="User Initiated")
        threading.Thread(target=run_change_set, args=(stack, change_set, kind), daemon=True).start()

    def run_delete(backend, stack):
        time.sleep(step)
        s3 = s3_backends[stack.account_id]["aws"]
        resources = [
            (logical_id, spec.get("Type", ""), stack.resource_map._parsed_resources.get(logical_id))
            for logical_id, spec in stack.resource_map._resource_json_map.items()
            if spec.get("DeletionPolicy") != "Retain"
        ]
        for logical_id, kind, resource in resources:
            if kind != "AWS::S3::Bucket" or resource is None:
                continue
            bucket = s3.buckets.get(resource.physical_resource_id)
            if bucket is not None and bucket.keys:
                record(
                    stack,
                    logical_id,
                    kind,
                    "DELETE_FAILED",
                    "The bucket you tried to delete is not empty",
                )
                stack.status = "DELETE_FAILED"
                stack._add_stack_event(
                    stack.status, f"The following resource(s) failed to delete: [{logical_id}]. "
                )
                return
        for logical_id, kind, _ in resources:
            record(stack, logical_id, kind, "DELETE_IN_PROGRESS")
        stack.resource_map.delete()
        for logical_id, kind, _ in resources:
            record(stack, logical_id, kind, "DELETE_COMPLETE")
        for export in stack.exports:
            backend.exports.pop(export.name, None)
        backend.stacks.pop(stack.stack_id, None)
        backend.deleted_stacks[stack.stack_id] = stack
        stack.status = "DELETE_COMPLETE"
        stack._add_stack_event(stack.status)

    def delete_stack(self, name_or_stack_id):
        for stack in list(self.stacks.values()):
            if name_or_stack_id in (stack.stack_id, stack.name):
                break
        else:
            return
        if stack.status == "DELETE_IN_PROGRESS":
            return
        stack.status = "DELETE_IN_PROGRESS"
        stack._add_stack_event(stack.status, resource_status_reason="User Initiated")
        threading.Thread(target=run_delete, args=(self, stack), daemon=True).start()

    monkeypatch.setattr(parsing, "parse_and_create_resource", tracked(original_create, "CREATE"))
    monkeypatch.setattr(parsing, "parse_and_update_resource", tracked(original_update, "UPDATE"))
    monkeypatch.setattr(models.CloudFormationBackend, "execute_change_set", execute_change_set)
    monkeypatch.setattr(models.CloudFormationBackend, "delete_stack", delete_stack)
