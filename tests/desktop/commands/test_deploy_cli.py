"""``classroom-console deploy|status|outputs|destroy`` against moto's server, as a user sees them.

The commands deploy ``backend/template.yaml`` by default, which moto cannot create (API Gateway
v2, ElastiCache, alarms), so these tests point the engine at the small test template instead.
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime

import boto3
import pytest

from desktop import cli
from desktop.commands import deploy as commands
from desktop.services.deploy import DeployEngine, StackEvent
from tests.desktop.services import moto_cloudformation
from tests.desktop.services.deploy_support import REPO, TEMPLATES, copy_backend, stack_name
from tests.desktop.services.error_endpoint import ACCESS_DENIED, ErrorEndpoint

# Only this module's commands: the others are tested (and may be written) elsewhere.
RUN_CLI = "import sys; from desktop import cli; cli.COMMANDS = ('deploy',); sys.exit(cli.main())"


@pytest.fixture
def endpoint(aws_environment, moto_endpoint, monkeypatch, tmp_path) -> str:
    moto_cloudformation.install(monkeypatch)
    monkeypatch.setenv("CLASSROOM_CONSOLE_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setattr(cli, "COMMANDS", ("deploy",))
    return moto_endpoint


@pytest.fixture
def use_template(monkeypatch, tmp_path):
    """Make the commands deploy a test template from a private copy of the backend."""
    source_root = copy_backend(tmp_path / "src")

    def use(name: str) -> None:
        engine = functools.partial(
            DeployEngine, template_path=TEMPLATES / name, source_root=source_root
        )
        monkeypatch.setattr(commands, "DeployEngine", engine)

    use("stack.yaml")
    return use


@pytest.fixture
def answers(monkeypatch):
    """A person at the terminal: the prompts they saw, and the answers they type."""
    prompts: list[str] = []
    typed: list[str] = []
    monkeypatch.setattr(commands, "interactive", lambda: True)

    def ask(prompt: str) -> str:
        prompts.append(prompt)
        return typed.pop(0)

    monkeypatch.setattr(commands, "ask", ask)
    return prompts, typed


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def where(endpoint: str) -> list[str]:
    return ["--endpoint-url", endpoint, "--region", "us-east-1"]


def test_deploy_shows_identity_change_set_progress_events_and_outputs(
    endpoint, use_template, capsys
):
    name = stack_name()
    code, out, err = run(
        capsys, "deploy", "--stack", name, "--param", "Greeting=hey", "--yes",
        "--poll-interval", "0.2", *where(endpoint),
    )  # fmt: skip
    assert code == 0, err
    assert "Deploying as arn:aws:" in out and "account 123456789012, region us-east-1" in out
    assert re.search(r"^  Action +Resource +Type +Replacement$", out, re.MULTILINE)
    assert re.search(r"^  Add +Function +AWS::Lambda::Function +-$", out, re.MULTILINE)
    assert re.search(r"^\[-{20}\] 0/7$", out, re.MULTILINE)
    assert re.search(r"^\[#{20}\] 7/7$", out, re.MULTILINE)
    assert re.search(
        r"^\d\d:\d\d:\d\d  CREATE_COMPLETE +Function \(AWS::Lambda::Function\)$", out, re.M
    )
    assert f"Stack {name} is CREATE_COMPLETE." in out
    assert re.search(r"^  Greeting +hey$", out, re.MULTILINE)

    code, out, _ = run(capsys, "deploy", "--stack", name, "--yes", *where(endpoint))
    assert code == 0
    assert "No changes: the stack is up to date." in out
    assert re.search(r"^  Greeting +hey$", out, re.MULTILINE)


def test_deploy_asks_before_changing_anything(endpoint, use_template, answers, capsys):
    prompts, typed = answers
    name = stack_name()
    typed.append("n")
    code, out, _ = run(
        capsys, "deploy", "--stack", name, "--poll-interval", "0.2", *where(endpoint)
    )
    assert code == 1
    assert prompts == [f"Deploy these 6 changes to {name}? [y/N] "]
    assert "Nothing was deployed" in out
    assert run(capsys, "status", "--stack", name, *where(endpoint))[1].startswith(
        f"Stack {name} does not exist"
    )

    typed.append("y")
    code, out, _ = run(
        capsys, "deploy", "--stack", name, "--poll-interval", "0.2", *where(endpoint)
    )
    assert code == 0
    assert f"Stack {name} is CREATE_COMPLETE." in out


def test_deploy_without_a_terminal_or_yes_refuses(aws_environment, monkeypatch, capsys):
    monkeypatch.setattr(cli, "COMMANDS", ("deploy",))
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, out, err = run(capsys, "deploy", "--stack", "classroom", *where("http://127.0.0.1:9"))
    assert code == 2
    assert "pass --yes to deploy without asking" in err
    assert out == ""


def test_a_failed_deploy_prints_the_first_failure_and_exits_1(endpoint, use_template, capsys):
    use_template("failing.yaml")
    taken = stack_name("taken")
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=taken)
    code, out, err = run(
        capsys, "deploy", "--stack", stack_name(), "--param", f"TakenBucketName={taken}", "--yes",
        "--poll-interval", "0.2", *where(endpoint),
    )  # fmt: skip
    assert code == 1
    assert "classroom-console: Resource Uploads (AWS::S3::Bucket) failed: " in err
    assert err.rstrip().endswith("The stack rolled back (ROLLBACK_COMPLETE).")
    assert "CREATE_FAILED" in out


def test_usage_errors_exit_2(endpoint, use_template, capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["deploy", "--stack", "x", "--param", "no-equals-sign"])
    assert caught.value.code == 2
    assert "is not KEY=VALUE" in capsys.readouterr().err
    code, _, err = run(capsys, "deploy", "--stack", stack_name(), "--yes", "--param", "Colour=red",
                       *where(endpoint))  # fmt: skip
    assert code == 2
    assert "The template has no parameter Colour." in err


def test_ctrl_c_stops_watching_with_130(endpoint, use_template, monkeypatch, capsys):
    def interrupted(self, plan, abort=None):
        now = datetime.now(UTC)
        yield StackEvent(now, self.stack_name, "AWS::CloudFormation::Stack", "CREATE_IN_PROGRESS")
        raise KeyboardInterrupt

    monkeypatch.setattr(DeployEngine, "execute", interrupted)
    name = stack_name()
    code, _, err = run(capsys, "deploy", "--stack", name, "--yes", *where(endpoint))
    assert code == 130
    assert (
        f"CloudFormation carries on with the deploy; run `classroom-console status --stack {name}`"
        in err
    )


def test_status_outputs_and_destroy(endpoint, use_template, answers, capsys):
    prompts, typed = answers
    name = stack_name()
    assert run(capsys, "deploy", "--stack", name, "--yes", "--poll-interval", "0.2",
               *where(endpoint))[0] == 0  # fmt: skip

    code, out, _ = run(capsys, "status", "--stack", name, *where(endpoint))
    assert code == 0
    assert re.search(rf"^  Stack +{name}$", out, re.MULTILINE)
    assert re.search(r"^  Status +CREATE_COMPLETE$", out, re.MULTILINE)
    assert "Latest events:" in out and "Outputs:" in out

    code, out, _ = run(capsys, "outputs", "--stack", name, "--json", *where(endpoint))
    outputs = json.loads(out)
    assert code == 0 and outputs["Greeting"] == "hello"
    code, out, _ = run(capsys, "outputs", "--stack", name, *where(endpoint))
    assert re.search(r"^  Key +Value$", out, re.MULTILINE)

    typed.append("something-else")
    code, _, err = run(
        capsys, "destroy", "--stack", name, "--poll-interval", "0.2", *where(endpoint)
    )
    assert code == 2 and "nothing was deleted" in err
    assert prompts == ["Type the stack name to confirm: "]

    typed.append(name)
    code, out, _ = run(
        capsys, "destroy", "--stack", name, "--poll-interval", "0.2", *where(endpoint)
    )
    assert code == 0
    assert "DELETE_COMPLETE" in out and f"Stack {name} is deleted." in out
    code, _, err = run(capsys, "outputs", "--stack", name, *where(endpoint))
    assert code == 1 and f"Stack {name} does not exist in us-east-1" in err


def test_destroy_without_a_terminal_or_yes_refuses(aws_environment, monkeypatch, capsys):
    monkeypatch.setattr(cli, "COMMANDS", ("deploy",))
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, _, err = run(capsys, "destroy", "--stack", "classroom", *where("http://127.0.0.1:9"))
    assert code == 2 and "Nothing was deleted" in err


@pytest.mark.parametrize(
    ("argv", "sentence"),
    [
        (["status"], "not allowed to perform cloudformation:DescribeStacks"),
        (["deploy", "--yes"], "not allowed to perform"),
    ],
)
def test_aws_failures_print_a_sentence_not_a_traceback(aws_environment, tmp_path, argv, sentence):
    environment = {**os.environ, "AWS_MAX_ATTEMPTS": "1",
                   "CLASSROOM_CONSOLE_CONFIG_DIR": str(tmp_path)}  # fmt: skip
    with ErrorEndpoint(*ACCESS_DENIED) as denied:
        completed = subprocess.run(
            [sys.executable, "-c", RUN_CLI, *argv, "--stack", "classroom", *where(denied.url)],
            capture_output=True, text=True, cwd=REPO, env=environment, timeout=60,
        )  # fmt: skip
    assert completed.returncode == 1
    assert completed.stderr.startswith("classroom-console: Your AWS identity (profile default)")
    assert sentence in completed.stderr
    assert "Traceback" not in completed.stdout + completed.stderr


def test_an_unreachable_endpoint_prints_a_sentence(aws_environment, tmp_path):
    environment = {**os.environ, "AWS_MAX_ATTEMPTS": "1"}
    completed = subprocess.run(
        [sys.executable, "-c", RUN_CLI, "outputs", "--stack", "classroom", *where("http://127.0.0.1:9")],
        capture_output=True, text=True, cwd=REPO, env=environment, timeout=60,
    )  # fmt: skip
    assert completed.returncode == 1
    assert "classroom-console: Could not reach AWS at http://127.0.0.1:9" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_recover_explains_what_it_cannot_do(endpoint, use_template, capsys):
    """moto has no continue_update_rollback or rollback_stack, so only the refusals run here."""
    code, _, err = run(capsys, "recover", "--stack", "never-made", "--resume", *where(endpoint))
    assert code == 1 and "never-made" in err and "nothing to resume" in err

    assert run(capsys, "deploy", "--stack", "healthy", "--yes", *where(endpoint))[0] == 0
    code, _, err = run(capsys, "recover", "--stack", "healthy", "--resume", *where(endpoint))
    assert code == 1
    assert "only a stack whose rollback failed (UPDATE_ROLLBACK_FAILED) can be resumed" in err


def test_recover_needs_one_way_and_skip_only_with_resume(endpoint, use_template, capsys):
    with pytest.raises(SystemExit) as usage:
        cli.main(["recover", "--stack", "s", *where(endpoint)])
    assert usage.value.code == 2
    code, _, err = run(
        capsys, "recover", "--stack", "s", "--rollback", "--skip", "Queue", *where(endpoint)
    )
    assert code == 2 and "--skip goes with --resume only" in err
