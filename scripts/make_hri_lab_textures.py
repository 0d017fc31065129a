#!/usr/bin/env python3
"""Generate the albedo maps the Gazebo worlds reference, with the project's texture generator.

Every `<albedo_map>materials/textures/<material>_<style>.jpg</albedo_map>` in
gazebo_worlds/*.sdf names its material and style; this script renders exactly those
files (tileable, deterministic per name) so anyone can regenerate or restyle them:

    python scripts/make_hri_lab_textures.py            # write the missing/changed files
    python scripts/make_hri_lab_textures.py --check    # exit 1 if any referenced file is missing
"""
from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from matseg_ros.data.textures import make_texture, parse_texture_name  # noqa: E402
from matseg_ros.fileio import atomic_write_bytes  # noqa: E402

WORLDS = ROOT / "gazebo_worlds"
TEXTURE_DIR = Path("materials") / "textures"


def referenced_textures(world: Path) -> list[Path]:
    """The albedo maps of a world that live in its materials/textures folder (relative URIs)."""
    names = {el.text.strip() for el in ET.parse(world).getroot().iter("albedo_map") if el.text}
    return sorted(world.parent / n for n in names if Path(n).parent == TEXTURE_DIR)


def render(path: Path, size: int, quality: int) -> bytes:
    """JPEG bytes of the texture a file name asks for; the seed comes from the name."""
    material, style = parse_texture_name(path)
    rng = np.random.default_rng(zlib.crc32(path.stem.encode("utf-8")))
    rgb = make_texture(material, size, rng, style)
    ok, data = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError(f"{path}: JPEG encoding failed")
    return data.tobytes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worlds", type=Path, nargs="*",
                        default=sorted(WORLDS.glob("*.sdf")), help="SDF worlds to scan")
    parser.add_argument("--size", type=int, default=512, help="texture side in pixels")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality")
    parser.add_argument("--force", action="store_true", help="rewrite files that exist")
    parser.add_argument("--check", action="store_true", help="only report missing files")
    args = parser.parse_args(argv)

    paths = sorted({p for w in args.worlds for p in referenced_textures(w)})
    missing = [p for p in paths if not p.is_file()]
    if args.check:
        for p in missing:
            print(f"missing: {p}", file=sys.stderr)
        return 1 if missing else 0
    total = 0
    for path in paths:
        if path.is_file() and not args.force:
            continue
        data = render(path, args.size, args.quality)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
        total += len(data)
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {len(data) // 1024} KiB")
    print(f"{len(paths)} textures referenced, {total / 2**20:.2f} MiB written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
