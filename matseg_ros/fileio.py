"""Atomic file and folder writes, safe file names and YAML reads whose errors name the file."""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import unicodedata
from pathlib import Path
from typing import Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one step.

    Use for writers that want a file name (cv2.imwrite, torch.save, savefig). The
    temporary keeps the final suffix so format-by-extension writers still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def refuse_existing(output: Path, force: bool) -> None:
    """FileExistsError unless `output` is new or `force` allows replacing it."""
    if output.exists() and not force:
        raise FileExistsError(f"{output}: already exists; pass --force to replace it")


@contextlib.contextmanager
def atomic_folder(output: Path, force: bool = False, purpose: str = "building") -> Iterator[Path]:
    """Yield a hidden folder beside `output`; on success it becomes `output` in one rename.

    A dataset appears only when complete; an old one (with `force`) goes only after the new
    one is in place, and a failure leaves neither half a folder nor the hidden one behind."""
    refuse_existing(output, force)
    output.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{output.name}.{purpose}-", dir=output.parent))
    try:
        yield work
        old = None
        if output.exists():
            old = output.parent / f".{output.name}.replaced-{os.getpid()}"
            os.replace(output, old)
        os.replace(work, output)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if work.exists():
            shutil.rmtree(work)


def read_yaml(path: Path, what: str, error: type[Exception]):
    """The document in a YAML file; `error("<path>: cannot read <what>: ...")` when it cannot be
    read and `error("<path>: not valid YAML: ...")` when it does not parse."""
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise error(f"{path}: not valid YAML: {exc}") from None


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def sanitize_filename(name: str, max_length: int = 120, default: str = "file") -> str:
    """A file name safe on any file system, from text that came from outside.

    No path separators, no leading dots (no hidden files, no `..`), ASCII letters,
    digits, '.', '_' and '-' only, bounded length.
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    cleaned = _UNSAFE.sub("_", ascii_name).strip("._-")[:max_length].rstrip("._-")
    return cleaned or default
