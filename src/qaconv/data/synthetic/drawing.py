"""Drawing one person on a crop, back to front: shadow, what is behind the body, legs, arms and
torso, head and hair, bags, then a little shading that rounds the body.

Coordinates are in person heights: u [1, W] across (0 = body axis), v [H, 1] down (0 = top of the
head, 1 = soles). The pose (view front/back/side, facing, walking phase) changes what shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


class _Canvas:
    """The crop being painted and the mask of the pixels the person covers so far."""

    def __init__(self, img: np.ndarray) -> None:
        self.img = img
        self.shape = img.shape[:2]
        self.person = np.zeros(self.shape, bool)

    def paint(self, mask: np.ndarray, colour: Any) -> None:
        """Paint `mask` (broadcast to the crop) with one colour or a per-pixel colour image."""
        mask = np.broadcast_to(mask, self.shape)
        colour = np.asarray(colour, np.float32)
        self.img[mask] = colour if colour.ndim == 1 else colour[mask]
        np.logical_or(self.person, mask, out=self.person)


@dataclass(frozen=True)
class _Figure:
    """One identity in one pose, with the body landmarks every part is drawn from (in person heights)."""

    p: dict[str, Any]  # the identity
    u: np.ndarray
    v: np.ndarray
    view: str
    facing: int  # 1 or -1
    phase: float  # walking phase in radians
    side: bool
    back: bool
    hr: float  # head radius (vertical)
    hw: float  # head half-width
    hcy: float  # head centre
    vs: float  # shoulders
    vh: float  # hips
    ankle: float
    wf: float  # width factor of the view (narrower from the side)
    sh: float  # shoulder half-width in this view
    hh: float  # hip half-width in this view
    leg_len: float
    arm_len: float
    sleeve_end: float
    upper: np.ndarray  # upper-garment colour per pixel

    @classmethod
    def create(
        cls, p: dict[str, Any], u: np.ndarray, v: np.ndarray, view: str, facing: int, phase: float, shape: tuple
    ) -> _Figure:
        side = view == "side"
        hr = p["head_r"]
        vs = 2 * hr + 0.03
        vh = vs + p["torso"]
        ankle = 0.965
        wf = 0.55 if side else 1.0
        arm_len = p["torso"] + 0.06
        return cls(
            p=p,
            u=u,
            v=v,
            view=view,
            facing=facing,
            phase=phase,
            side=side,
            back=view == "back",
            hr=hr,
            hw=hr * 0.82,
            hcy=hr + 0.005,
            vs=vs,
            vh=vh,
            ankle=ankle,
            wf=wf,
            sh=p["sh"] * wf,
            hh=p["hh"] * wf,
            leg_len=ankle - vh,
            arm_len=arm_len,
            sleeve_end=vs + (arm_len - 0.045 if p["long_sleeves"] else 0.35 * arm_len),
            upper=_pattern(p, u, v, vs, shape),
        )


def _pattern(p: dict[str, Any], u: np.ndarray, v: np.ndarray, vs: float, shape: tuple[int, int]) -> np.ndarray:
    """Upper-garment colour per pixel [H, W, 3] (plain, stripes, checks, logo or two-tone)."""
    c1, c2 = np.asarray(p["upper1"], np.float32), np.asarray(p["upper2"], np.float32)
    kind, period = p["pattern"], p["period"]
    if kind == "hstripes":
        second = (v / period) % 1 < 0.5
    elif kind == "vstripes":
        second = (u / period) % 1 < 0.5
    elif kind == "checks":
        second = ((v / (1.4 * period)) % 1 < 0.5) ^ ((u / (1.4 * period)) % 1 < 0.5)
    elif kind == "twotone":
        second = v > vs + 0.45 * p["torso"]
    else:
        return np.broadcast_to(c1, (*shape, 3))
    return np.where(np.broadcast_to(second, shape)[..., None], c2, c1)


def _shadow(c: _Canvas, f: _Figure) -> None:
    """The ground shadow (darkens the scene; not part of the person)."""
    shadow = np.broadcast_to(((f.u / (1.6 * f.p["sh"])) ** 2 + ((f.v - 1.0) / 0.025) ** 2) <= 1, c.shape)
    c.img[shadow] *= 0.7


def _behind_body(c: _Canvas, f: _Figure) -> None:
    """Long hair behind the shoulders (front and side views) and a backpack behind the body (side view)."""
    p, u, v = f.p, f.u, f.v
    if p["hair_style"] == "long" and not f.back:
        c.paint(
            (np.abs(u + (0.25 * f.hw * f.facing if f.side else 0)) <= f.hw * 1.12) & (v >= f.hcy) & (v <= f.vs + 0.1),
            p["hair"],
        )
    if f.side and p["bag"] == "backpack":
        c.paint(
            (u * f.facing <= -f.sh + 0.01)
            & (u * f.facing >= -f.sh - 0.075)
            & (v >= f.vs + 0.02)
            & (v <= f.vs + 0.65 * p["torso"]),
            p["bag_colour"],
        )


def _legs(c: _Canvas, f: _Figure) -> None:
    """Legs (trousers, or bare or tights below shorts and skirts), shoes, and the skirt over them."""
    p, u, v, vh, leg_len = f.p, f.u, f.v, f.vh, f.leg_len
    if f.side:
        centres, swings = (0.0, 0.0), (0.35 * math.sin(f.phase), -0.35 * math.sin(f.phase))
    else:
        legw0 = 0.46 * f.hh
        centres, swings = (-(f.hh - legw0), f.hh - legw0), (0.04 * math.sin(f.phase), -0.04 * math.sin(f.phase))
    legw = 0.46 * p["hh"] * (0.8 if f.side else 1.0)
    knee = vh + 0.45 * leg_len
    kind = p["lower_kind"]
    bare = np.asarray(p["lower"]) * 0.35 if p["tights"] and kind == "skirt" else p["skin"]
    for centre, swing in zip(centres, swings, strict=True):
        axis = u - centre - swing * np.clip(v - vh, 0, None)
        taper = legw * (1 - 0.25 * np.clip((v - vh) / leg_len, 0, 1))
        leg = (np.abs(axis) <= taper) & (v >= vh - 0.01) & (v <= f.ankle)
        if kind == "trousers":
            c.paint(leg, p["lower"])
        else:
            c.paint(leg & (v < knee), p["lower"] if kind == "shorts" else bare)
            c.paint(leg & (v >= knee), bare)
        toe = 0.025 * f.facing if f.side else 0.0
        c.paint((np.abs(axis - toe) <= legw * 0.8 + 0.012) & (v > f.ankle - 0.005) & (v <= 1.0), p["shoes"])
    if kind == "skirt":
        depth = np.clip((v - vh) / (0.5 * leg_len), 0, 1)
        c.paint((np.abs(u) <= f.hh * (1.05 + 0.5 * depth)) & (v >= vh - 0.01) & (v <= vh + 0.5 * leg_len), p["lower"])


def _arms(c: _Canvas, f: _Figure) -> None:
    """Both arms beside the body (front/back view) or the near arm swinging (side view); sleeves, then skin."""
    p, u, v, vs, sh = f.p, f.u, f.v, f.vs, f.sh
    xs = [(0.0, -0.3 * math.sin(f.phase))] if f.side else [(-(sh + p["arm"] * 0.6), -0.06), (sh + p["arm"] * 0.6, 0.06)]
    for x0, slope in xs:
        axis = u - x0 - slope * np.clip(v - vs, 0, None)
        arm = (np.abs(axis) <= p["arm"]) & (v >= vs + 0.004) & (v <= vs + f.arm_len)
        c.paint(arm & (v < f.sleeve_end), f.upper)
        c.paint(arm & (v >= f.sleeve_end), p["skin"])


def _torso(c: _Canvas, f: _Figure) -> None:
    """The upper garment from the shoulders to the hips, and its chest logo from the front."""
    p, u, v, vs, vh = f.p, f.u, f.v, f.vs, f.vh
    t = np.clip((v - vs) / (vh - vs), 0, 1)
    width = f.sh + (f.hh - f.sh) * t - 0.03 * np.clip(1 - (v - vs) / 0.03, 0, 1) ** 2
    c.paint((np.abs(u) <= width) & (v >= vs) & (v <= vh + 0.02), f.upper)
    if p["pattern"] == "logo" and f.view == "front":
        lu, lv, r = u, v - (vs + 0.3 * p["torso"]), 0.045 * f.wf
        logo = {
            "circle": lu**2 + lv**2 <= r**2,
            "square": (np.abs(lu) <= 0.8 * r) & (np.abs(lv) <= 0.8 * r),
            "diamond": np.abs(lu) + np.abs(lv) <= r,
            "triangle": (lv <= 0.7 * r) & (lv >= -r + 2 * np.abs(lu)),
        }[p["logo"]]
        c.paint(logo, p["upper2"])


def _head(c: _Canvas, f: _Figure) -> None:
    """Neck and head, then the hair (what of it shows in this view) and the hat with its brim."""
    p, u, v, hr, hw, hcy, vs = f.p, f.u, f.v, f.hr, f.hw, f.hcy, f.vs
    c.paint((np.abs(u) <= hw * 0.45) & (v >= 2 * hr - 0.01) & (v <= vs + 0.005), p["skin"])
    hu = u - (0.01 * f.facing if f.side else 0.0)
    c.paint((hu / hw) ** 2 + ((v - hcy) / hr) ** 2 <= 1, p["skin"])
    cap = (hu / (1.08 * hw)) ** 2 + ((v - hcy) / (1.06 * hr)) ** 2 <= 1
    style, hair = p["hair_style"], p["hair"]
    if style != "bald":
        if f.back:
            covered = cap & (v <= hcy + 0.8 * hr)
        elif f.side:
            covered = cap & ((v <= hcy - 0.3 * hr) | (hu * f.facing < -0.2 * hw))
        else:
            covered = cap & (v <= hcy - 0.35 * hr)
        c.paint(covered, hair)
        if style == "long" and f.back:
            c.paint((np.abs(u) <= hw * 1.15) & (v >= hcy) & (v <= vs + 0.1), hair)
        if style == "ponytail" and f.view != "front":
            tail_u = u + (hw * 0.9 * f.facing if f.side else 0.0)
            c.paint((np.abs(tail_u) <= 0.018) & (v >= hcy - 0.2 * hr) & (v <= vs + 0.08), hair)
    if p["hat"]:
        c.paint(cap & (v <= hcy - 0.2 * hr), p["hat_colour"])
        if not f.back:
            brim_u = hu - (0.7 * hw * f.facing if f.side else 0.0)
            c.paint(
                (np.abs(brim_u) <= hw * (0.8 if f.side else 1.15)) & (np.abs(v - (hcy - 0.25 * hr)) <= 0.05 * hr),
                p["hat_colour"],
            )


def _bag(c: _Canvas, f: _Figure) -> None:
    """A backpack (straps from the front, the pack from the back), a shoulder bag or a handbag."""
    p, u, v, vs, vh, sh, hh = f.p, f.u, f.v, f.vs, f.vh, f.sh, f.hh
    bag, colour = p["bag"], p["bag_colour"]
    if bag == "backpack" and f.back:
        c.paint((np.abs(u) <= sh * 0.75) & (v >= vs + 0.02) & (v <= vs + 0.65 * p["torso"]), colour)
        c.paint(
            (np.abs(u) <= sh * 0.5) & (v >= vs + 0.45 * p["torso"]) & (v <= vs + 0.6 * p["torso"]),
            np.asarray(colour) * 0.7,
        )
    elif bag == "backpack" and not f.side:
        c.paint((np.abs(np.abs(u) - sh * 0.55) <= 0.012) & (v >= vs) & (v <= vs + 0.55 * p["torso"]), colour)
    elif bag == "shoulder":
        d = -1.0 if f.back else 1.0
        if f.side:
            strap = np.abs(u - f.facing * 0.01) <= 0.01
            box_u = u - f.facing * 0.01
        else:
            x0, x1 = sh * 0.6 * d, -hh * 1.05 * d
            strap = np.abs(u - (x0 + (x1 - x0) * np.clip((v - vs) / (vh - 0.03 - vs), 0, 1))) <= 0.01
            box_u = u + d * (hh + 0.03)
        c.paint(strap & (v >= vs - 0.005) & (v <= vh - 0.03), colour)
        c.paint((np.abs(box_u) <= 0.045) & (v >= vh - 0.08) & (v <= vh + 0.04), colour)
    elif bag == "handbag":
        arm_len = f.arm_len
        hand_u = u - (-0.3 * math.sin(f.phase) * arm_len if f.side else (sh + p["arm"] * 0.6 + 0.06 * arm_len))
        c.paint((np.abs(hand_u) <= 0.035) & (v >= vs + arm_len - 0.01) & (v <= vs + arm_len + 0.09), colour)


def _shade(c: _Canvas, f: _Figure) -> None:
    """Round the body with a little horizontal shading."""
    shade = np.broadcast_to(1.0 - 0.22 * np.clip((f.u / (1.3 * f.p["sh"])) ** 2, 0, 1), c.shape)
    c.img[c.person] *= shade[c.person][:, None]


def draw_person(
    img: np.ndarray, p: dict[str, Any], u: np.ndarray, v: np.ndarray, view: str, facing: int, phase: float
) -> np.ndarray:
    """Paint identity `p` on img [H, W, 3] in place, in pose (view, facing, phase); u [1, W] and v [H, 1]
    place the person (see the module docstring). Returns the person's mask [H, W]."""
    canvas = _Canvas(img)
    figure = _Figure.create(p, u, v, view, facing, phase, canvas.shape)
    _shadow(canvas, figure)
    _behind_body(canvas, figure)
    _legs(canvas, figure)
    if not figure.side:  # arms behind the torso's edges from the front and the back ...
        _arms(canvas, figure)
    _torso(canvas, figure)
    if figure.side:  # ... and the near arm over it from the side
        _arms(canvas, figure)
    _head(canvas, figure)
    _bag(canvas, figure)
    _shade(canvas, figure)
    return canvas.person
