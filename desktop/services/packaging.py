"""The backend's Lambda zip: built reproducibly, stored in S3 under its content hash.

Identical code gives a byte-identical zip (sorted entries, 1980-01-01 timestamps, fixed
permissions), so its sha256 names it and an unchanged backend is never uploaded twice. The zip
holds ``backend/`` and the pure-Python libraries it imports; boto3 and botocore are left out
because the Lambda Python runtime provides them.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

from botocore.exceptions import ClientError

from desktop.services.aws import AwsTarget, aws_errors, caller_identity, client, region_of
from desktop.services.errors import ConfigurationError, DeployError

# What the backend imports at run time; their own dependencies are listed too (powertools needs
# jmespath and typing_extensions). boto3, botocore, s3transfer and urllib3 come with the runtime.
BUNDLED_DISTRIBUTIONS = ("PyJWT", "redis", "aws-lambda-powertools", "jmespath", "typing_extensions")
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644
UNIX = 3
COMPILED_SUFFIXES = (".so", ".pyd", ".dylib", ".dll")
SKIPPED_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class Artifact:
    """A built Lambda zip; ``sha256`` (hex) names it in S3."""

    path: Path
    sha256: str
    size: int


class UploadedArtifact(NamedTuple):
    bucket: str
    key: str
    uploaded: bool


def artifact_entries(source_root: Path) -> list[tuple[str, Path]]:
    """Every file the zip holds, as (name in the zip, file on disk), sorted by name."""
    backend = Path(source_root) / "backend"
    if not (backend / "__init__.py").is_file():
        raise ConfigurationError(
            f"There is no backend package in {source_root}.",
            hint="Point the deploy at the folder that contains backend/.",
        )
    entries: dict[str, Path] = {}
    for path in backend.rglob("*.py"):
        if "__pycache__" not in path.parts:
            entries[path.relative_to(source_root).as_posix()] = path
    for name in BUNDLED_DISTRIBUTIONS:
        for arcname, path in _distribution_files(name):
            if arcname in entries:
                raise ConfigurationError(
                    f"{name} and another package both ship {arcname}; the zip would keep only one.",
                    hint="Uninstall the conflicting package from this environment.",
                )
            entries[arcname] = path
    return sorted(entries.items())


def _distribution_files(name: str) -> list[tuple[str, Path]]:
    try:
        distribution = metadata.distribution(name)
    except metadata.PackageNotFoundError as error:
        raise ConfigurationError(
            f"The backend needs {name}, which is not installed here, to build its Lambda zip.",
            hint=f"Install it (pip install {name}) and deploy again.",
        ) from error
    files = distribution.files
    if files is None:
        raise ConfigurationError(
            f"{name} was installed without a file list (RECORD), so it cannot be packaged.",
            hint=f"Reinstall it with pip (pip install --force-reinstall {name}).",
        )
    found = []
    for relative in files:
        parts = relative.parts
        if not parts or parts[0] == ".." or parts[0].endswith((".dist-info", ".egg-info")):
            continue
        if "__pycache__" in parts or relative.name.endswith(SKIPPED_SUFFIXES):
            continue
        if relative.name.endswith(COMPILED_SUFFIXES):
            raise ConfigurationError(
                f"{name} contains compiled code ({relative.name}) built for this computer, "
                "not for Lambda.",
                hint=f"Install the pure-Python build of {name} and deploy again.",
            )
        located = distribution.locate_file(relative)
        # Only files on disk can be packaged (an install inside a zip has none to copy).
        path = Path(located) if isinstance(located, os.PathLike) else None
        if path is None or not path.is_file():
            raise ConfigurationError(
                f"{name} is incomplete: {relative} is missing.",
                hint=f"Reinstall it (pip install --force-reinstall {name}).",
            )
        found.append((relative.as_posix(), path))
    return found


def build_zip(entries: list[tuple[str, Path]]) -> bytes:
    """The zip's bytes; the same entries and contents always give the same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for arcname, path in entries:
            info = zipfile.ZipInfo(arcname, date_time=ZIP_DATE)
            info.create_system = UNIX
            info.external_attr = FILE_MODE << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=9)
    return buffer.getvalue()


def build_artifact(source_root: Path, output_dir: Path | None = None) -> Artifact:
    """Build the Lambda zip for the backend under ``source_root``, named by its sha256."""
    folder = Path(output_dir) if output_dir else Path(tempfile.gettempdir()) / "classroom-console"
    try:
        entries = artifact_entries(Path(source_root))
        fingerprint = (str(folder), *((name, *_stat(path)) for name, path in entries))
        built = _built.get(fingerprint)
        if built is not None and built.path.is_file() and built.path.stat().st_size == built.size:
            return built  # nothing changed since the last build in this process
        data = build_zip(entries)
    except OSError as error:
        raise ConfigurationError(
            f"Could not read {error.filename} while packaging the backend ({error.strerror}).",
            hint="Check that the file exists and is readable.",
        ) from error
    digest = hashlib.sha256(data).hexdigest()
    path = folder / f"backend-{digest}.zip"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.stat().st_size != len(data):
            handle, temporary = tempfile.mkstemp(prefix=".backend-", suffix=".zip", dir=folder)
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
            os.replace(temporary, path)
    except OSError as error:
        raise ConfigurationError(
            f"Could not write the Lambda zip to {folder} ({error.strerror}).",
            hint="Check that the folder is writable and the disk is not full.",
        ) from error
    artifact = Artifact(path=path, sha256=digest, size=len(data))
    _built[fingerprint] = artifact
    return artifact


_built: dict[tuple, Artifact] = {}


def _stat(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_size, status.st_mtime_ns


def artifacts_bucket_name(account: str, region: str) -> str:
    """One artifacts bucket per account and region, named so it is found again next time."""
    return f"classroom-console-artifacts-{account}-{region}"


def artifact_key(artifact: Artifact) -> str:
    return f"backend/{artifact.sha256}.zip"


def ensure_bucket(
    target: AwsTarget, name: str | None = None, *, s3=None, account: str | None = None
) -> str:
    """The artifacts bucket's name, creating it private, encrypted and versioned if missing."""
    with aws_errors(target):
        s3 = s3 or client(target, "s3")
        region = region_of(target)
        account = account or caller_identity(target).account
        name = name or artifacts_bucket_name(account, region)
        try:
            s3.head_bucket(Bucket=name, ExpectedBucketOwner=account)
            return name
        except ClientError as error:
            if _code(error) in ("403", "AccessDenied", "Forbidden"):
                raise DeployError(
                    f"The artifacts bucket {name} exists, but this identity cannot use it "
                    "(it may belong to another AWS account).",
                    hint="Ask your AWS administrator for access to it (s3:ListBucket).",
                ) from error
            if _code(error) not in ("404", "NoSuchBucket", "NotFound"):
                raise
        options: dict[str, object] = {"Bucket": name, "ObjectOwnership": "BucketOwnerEnforced"}
        if region != "us-east-1":
            options["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            s3.create_bucket(**options)
        except ClientError as error:
            if _code(error) == "BucketAlreadyExists":
                raise DeployError(
                    f"The artifacts bucket name {name} is taken by another AWS account.",
                    hint="Ask your AWS administrator; the deploy cannot upload code there.",
                ) from error
            if _code(error) != "BucketAlreadyOwnedByYou":
                raise
        s3.put_public_access_block(
            Bucket=name,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        s3.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def upload(
    target: AwsTarget,
    artifact: Artifact,
    *,
    s3=None,
    bucket: str | None = None,
    account: str | None = None,
) -> UploadedArtifact:
    """Put the zip at ``backend/{sha256}.zip``, skipping the upload when that key exists."""
    with aws_errors(target):
        s3 = s3 or client(target, "s3")
        account = account or caller_identity(target).account
        bucket = bucket or ensure_bucket(target, s3=s3, account=account)
        key = artifact_key(artifact)
        try:
            data = artifact.path.read_bytes()
        except OSError as error:
            raise ConfigurationError(
                f"The Lambda zip {artifact.path} could not be read ({error.strerror}).",
                hint="Package the backend again.",
            ) from error
        uploaded = _put_once(s3, bucket, key, data, "application/zip", account)
    return UploadedArtifact(bucket, key, uploaded)


def upload_template(
    target: AwsTarget, body: bytes, *, s3=None, bucket: str | None = None, account=None
) -> str:
    """The HTTPS URL of ``body`` in the artifacts bucket, for templates too big to send inline."""
    with aws_errors(target):
        s3 = s3 or client(target, "s3")
        account = account or caller_identity(target).account
        bucket = bucket or ensure_bucket(target, s3=s3, account=account)
        key = f"templates/{hashlib.sha256(body).hexdigest()}.yaml"
        _put_once(s3, bucket, key, body, "application/x-yaml", account)
        region = region_of(target)
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://{bucket}.s3.{region}.{domain}/{key}"


def _put_once(s3, bucket: str, key: str, data: bytes, content_type: str, account: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key, ExpectedBucketOwner=account)
        return False
    except ClientError as error:
        if _code(error) not in ("404", "NoSuchKey", "NotFound"):
            raise
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=data,
        ContentType=content_type,
        ChecksumSHA256=base64.b64encode(hashlib.sha256(data).digest()).decode("ascii"),
        ExpectedBucketOwner=account,
    )
    return True


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
