"""A small rasteriser for textured planar polygons: pinhole camera, z-buffer, point light.

Each face is a convex planar polygon in world coordinates (metres; x right, y up, z into
the room) with a texture basis. Its texture is mapped with the exact plane-to-image
homography (cv2.warpPerspective over the polygon's bounding box, wrapping, with a
mip level chosen from the texel density), lit per pixel (Lambert + Blinn-Phong from one
point light, evaluated on a coarse grid and upsampled), and written where the polygon
covers a pixel and is nearer than what is there. The class-id mask is written with the
same coverage (cv2.fillPoly, no anti-aliasing), so labels match the rendered regions
exactly. Faces are drawn far to near, so see-through glass blends what lies behind it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

NEAR = 0.05  # metres


def cross(a, b) -> np.ndarray:
    """3-vector cross product (np.cross costs ~40× more on single vectors)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


@dataclass
class Camera:
    """Pinhole camera: K (3×3), R (world -> camera rows: right, down, forward), centre C."""
    K: np.ndarray
    R: np.ndarray
    C: np.ndarray
    size: tuple[int, int]  # (h, w)

    @classmethod
    def look(cls, position, yaw: float, pitch: float, roll: float, hfov: float,
             size: tuple[int, int]) -> "Camera":
        h, w = size
        forward = np.array([np.sin(yaw) * np.cos(pitch), np.sin(pitch), np.cos(yaw) * np.cos(pitch)])
        right = cross([0.0, 1.0, 0.0], forward)
        right /= np.linalg.norm(right)
        down = cross(right, forward)
        c, s = np.cos(roll), np.sin(roll)
        right, down = c * right + s * down, c * down - s * right
        f = 0.5 * w / np.tan(0.5 * hfov)
        K = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]])
        return cls(K, np.stack([right, down, forward]), np.asarray(position, float), (h, w))

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, float) - self.C) @ self.R.T

    def project(self, cam_points: np.ndarray) -> np.ndarray:
        p = cam_points @ self.K.T
        return p[:, :2] / p[:, 2:3]


@dataclass
class Surface:
    """How a face looks: a texture pyramid (float32 RGB 0..1, level 0 finest) and its optics."""
    pyramid: list[np.ndarray]
    texels_per_metre: float
    tint: np.ndarray = field(default_factory=lambda: np.ones(3, np.float32))
    specular: float = 0.0
    shininess: float = 20.0
    glass: float = 0.0        # > 0: see-through; fraction of what lies behind that shows
    emissive: bool = False    # unlit (an outside view, a dark doorway)
    wrap: bool = True         # tile the texture; else clamp (a picture, a view)
    folds: float = 0.0        # shading ripple amplitude along e1 (curtain folds, radiator fins)
    fold_period: float = 0.16  # metres


@dataclass
class Face:
    points: np.ndarray        # N×3 world, convex, coplanar, in order around
    e1: np.ndarray            # unit texture axis in the plane
    e2: np.ndarray            # unit, e1 × e2 = outward normal
    label: int
    surface: Surface
    offset: tuple[float, float] = (0.0, 0.0)  # texture offset in texels
    double_sided: bool = False
    normal: np.ndarray = None  # e1 × e2, filled in

    def __post_init__(self):
        if self.normal is None:
            self.normal = cross(self.e1, self.e2)

    def depth_key(self, camera: Camera) -> float:
        d = self.points.sum(axis=0) / len(self.points) - camera.C
        return float(np.sqrt(d.dot(d)))


def make_face(points, normal, axis, label: int, surface: Surface, offset=(0.0, 0.0),
              double_sided: bool = False) -> Face:
    """A face whose texture runs along `axis` (projected into the plane)."""
    n = np.asarray(normal, float)
    n = n / np.sqrt(n.dot(n))
    a = np.asarray(axis, float)
    e1 = a - a.dot(n) * n
    length = np.sqrt(e1.dot(e1))
    if length < 1e-9:
        e1 = cross(n, [0.0, 0.0, 1.0]) if abs(n[2]) < 0.9 else cross(n, [1.0, 0.0, 0.0])
        length = np.sqrt(e1.dot(e1))
    e1 = e1 / length
    return Face(np.asarray(points, float), e1, cross(n, e1), label, surface, offset, double_sided, n)


def clip_near(points: np.ndarray, near: float = NEAR) -> np.ndarray:
    """Sutherland–Hodgman clip of a camera-space polygon to z >= near."""
    if points[:, 2].min() >= near:
        return points
    out = []
    n = len(points)
    for i in range(n):
        a, b = points[i], points[(i + 1) % n]
        ina, inb = a[2] >= near, b[2] >= near
        if ina:
            out.append(a)
        if ina != inb:
            t = (near - a[2]) / (b[2] - a[2])
            out.append(a + t * (b - a))
    return np.array(out) if out else np.zeros((0, 3))


class Raster:
    """Colour, class ids and inverse depth of one frame."""

    def __init__(self, camera: Camera, light, ambient: float, power: float,
                 light_color=(1.0, 0.97, 0.9)):
        h, w = camera.size
        self.camera = camera
        self.rgb = np.zeros((h, w, 3), np.float32)
        self.ids = np.zeros((h, w), np.uint8)
        self.invz = np.zeros((h, w), np.float32)
        self.light = camera.to_camera(np.asarray(light, float)[None])[0]
        self.ambient, self.power = ambient, power
        self.light_color = np.asarray(light_color, np.float32)

    def draw(self, face: Face) -> None:
        cam = self.camera
        normal = face.normal
        facing = normal.dot(cam.C - face.points[0])
        if facing <= 0 and not face.double_sided:
            return
        pc = cam.to_camera(face.points)
        if pc[:, 2].max() < NEAR:
            return
        pc = clip_near(pc)
        if len(pc) < 3:
            return
        img = cam.project(pc)
        h, w = cam.size
        x0, y0 = max(int(np.floor(img[:, 0].min())), 0), max(int(np.floor(img[:, 1].min())), 0)
        x1, y1 = min(int(np.ceil(img[:, 0].max())) + 1, w), min(int(np.ceil(img[:, 1].max())) + 1, h)
        if x1 <= x0 or y1 <= y0:
            return
        zone = (slice(y0, y1), slice(x0, x1))
        # inverse depth is affine over the face, so its extremes are at the vertices:
        # nearer than nothing in the box -> hidden behind what is drawn already
        if 1.0 / pc[:, 2].min() <= self.invz[zone].min():
            return
        bw, bh = x1 - x0, y1 - y0
        mask = np.zeros((bh, bw), np.uint8)
        cv2.fillPoly(mask, [np.round((img - (x0, y0)) * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
        nc = cam.R @ (normal if facing > 0 else -normal)
        oc = cam.R @ (face.points[0] - cam.C)
        dc = nc.dot(oc)
        if abs(dc) < 1e-9:
            return
        fx, fy, cx, cy = cam.K[0, 0], cam.K[1, 1], cam.K[0, 2], cam.K[1, 2]
        xs = np.arange(x0, x1, dtype=np.float32)
        ys = np.arange(y0, y1, dtype=np.float32)
        invz = (np.float32(nc[0] / fx / dc) * (xs - np.float32(cx)))[None, :] + (
            np.float32(nc[1] / fy / dc) * (ys - np.float32(cy)) + np.float32(nc[2] / dc))[:, None]
        visible = mask.view(bool)  # fillPoly wrote 0/1
        visible &= invz > self.invz[zone]
        if not visible.any():
            return
        color = self._texture(face, pc, img, (x0, y0, bw, bh))
        surf = face.surface
        if surf.emissive:
            out = color
            out *= surf.tint
        else:
            if bw * bh <= 400:  # small: light once, at the centre
                shade, spec = self._light_point(face, nc, pc.mean(axis=0))
            else:
                shade, spec = self._light(face, nc, oc, xs, ys, invz)
            if surf.glass > 0:
                behind = cv2.GaussianBlur(self.rgb[zone], (0, 0), 1.2)
                out = behind * (surf.tint * surf.glass) + color * (1 - surf.glass) * shade[..., None]
            else:
                out = color
                out *= surf.tint * shade[..., None] if shade.size == 1 else surf.tint
                if shade.size > 1:
                    out *= shade[..., None]
            if surf.specular > 0:
                out += spec[..., None] * self.light_color
        np.copyto(self.rgb[zone], out, where=visible[..., None])
        np.copyto(self.ids[zone], np.uint8(face.label), where=visible)
        np.copyto(self.invz[zone], invz, where=visible)

    def _texture(self, face: Face, pc: np.ndarray, img: np.ndarray, box) -> np.ndarray:
        cam, surf = self.camera, face.surface
        x0, y0, bw, bh = box
        # texels per pixel at the polygon's typical depth, worse when seen obliquely
        z = float(np.median(pc[:, 2]))
        view = pc.mean(axis=0)
        cos = abs(cam.R @ face.normal @ view) / (np.linalg.norm(view) + 1e-9)
        density = surf.texels_per_metre * z / cam.K[0, 0] / max(cos, 0.2)
        level = int(np.clip(np.floor(np.log2(max(density, 1.0)) + 0.5), 0, len(surf.pyramid) - 1))
        tex = surf.pyramid[level]
        scale = surf.texels_per_metre / 2 ** level
        r1, r2 = cam.R @ face.e1, cam.R @ face.e2
        s0, t0 = face.offset[0] / 2 ** level, face.offset[1] / 2 ** level
        M = np.column_stack([r1 / scale, r2 / scale,
                             cam.R @ (face.points[0] - cam.C) - (s0 * r1 + t0 * r2) / scale])
        H = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]]) @ cam.K @ M
        border = cv2.BORDER_WRAP if surf.wrap else cv2.BORDER_REPLICATE
        return cv2.warpPerspective(tex, H, (bw, bh), flags=cv2.INTER_LINEAR, borderMode=border)

    def _light(self, face: Face, nc, oc, xs, ys, invz):
        """Diffuse shade and specular term per pixel, on a grid of 1 in `step` pixels."""
        cam, surf = self.camera, face.surface
        step = 4 if min(len(xs), len(ys)) > 16 else 1
        gx, gy, iz = xs[::step], ys[::step], invz[::step, ::step]
        z = 1.0 / np.maximum(iz, 1e-4)
        fx, fy, cx, cy = cam.K[0, 0], cam.K[1, 1], cam.K[0, 2], cam.K[1, 2]
        P = np.stack([z * ((gx - cx) / fx)[None, :], z * ((gy - cy) / fy)[:, None], z], axis=-1)
        L = self.light.astype(np.float32) - P
        dist = np.linalg.norm(L, axis=-1, keepdims=True)
        L /= dist
        falloff = self.power / (1.0 + (dist[..., 0] / 3.0) ** 2)
        ndl = np.maximum(L @ nc.astype(np.float32), 0.0)
        shade = self.ambient + ndl * falloff
        if surf.folds:
            u = (P - oc.astype(np.float32)) @ (cam.R @ face.e1).astype(np.float32)
            shade = shade * (1.0 + surf.folds * np.sin(u * (2 * np.pi / surf.fold_period)))
        spec = None
        if surf.specular > 0:
            V = -P / np.linalg.norm(P, axis=-1, keepdims=True)
            half = L + V
            half /= np.linalg.norm(half, axis=-1, keepdims=True)
            spec = surf.specular * falloff * np.maximum(half @ nc.astype(np.float32), 0) ** surf.shininess
        if step > 1:
            size = (len(xs), len(ys))
            shade = cv2.resize(shade, size, interpolation=cv2.INTER_LINEAR)
            if spec is not None:
                spec = cv2.resize(spec, size, interpolation=cv2.INTER_LINEAR)
        return shade.astype(np.float32), spec

    def _light_point(self, face: Face, nc: np.ndarray, p: np.ndarray):
        """`_light` at one point, in plain floats (small faces are many)."""
        surf = face.surface
        L = self.light - p
        dist = float(np.sqrt(L.dot(L)))
        L = L / dist
        falloff = self.power / (1.0 + (dist / 3.0) ** 2)
        shade = self.ambient + max(float(L.dot(nc)), 0.0) * falloff
        spec = None
        if surf.specular > 0:
            half = L - p / float(np.sqrt(p.dot(p)))
            half = half / float(np.sqrt(half.dot(half)))
            spec = surf.specular * falloff * max(float(half.dot(nc)), 0.0) ** surf.shininess
            spec = np.full((1, 1), spec, np.float32)
        return np.full((1, 1), shade, np.float32), spec

    def shadow(self, polygons: list[np.ndarray], strength: float, blur: float,
               only: np.ndarray | None = None) -> None:
        """Soft contact shadows: darken where the projected floor polygons fall, blurred
        (only where `only` is true: the room, not the furniture casting them)."""
        h, w = self.camera.size
        shade = np.zeros((h, w), np.float32)
        for poly in polygons:
            pc = clip_near(self.camera.to_camera(poly))
            if len(pc) >= 3:
                img = self.camera.project(pc)
                cv2.fillPoly(shade, [np.round(img * 16).astype(np.int32)], 1.0, cv2.LINE_8, 4)
        if shade.any():
            shade = cv2.GaussianBlur(shade, (0, 0), blur)
            if only is not None:
                shade *= only
            self.rgb *= (1.0 - strength * shade)[..., None]
