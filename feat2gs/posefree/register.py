"""Moving cameras by a similarity, and registering views of a joint reconstruction into another frame.

A similarity ``S: x -> s R x + t`` (``feat2gs.geometry.umeyama.Sim3``) maps world frame A to frame B. A camera
of frame A with world-to-camera ``[Rc | tc]`` (centre ``c = -Rc^T tc``) sees the point x_A exactly where the
moved camera sees S(x_A) when the moved camera has

    centre  c_B = s R c + t,    rotation  Rc_B = Rc R^T,    translation  tc_B = -Rc_B c_B,

and the same intrinsics; depths are multiplied by s. (Left-multiplying the camera-to-world matrix by
``[R | s t]``, as the official Feat2GS/InstantSplat registration does, puts the centre at ``R c + s t``,
which is only right when s = 1.)

``register_views``: views reconstructed jointly with the train views (frame A, e.g. a DUSt3R or COLMAP run
on train + test) are brought into the train-only reconstruction's frame B by the Umeyama similarity fitted
on corresponding points of the train views (per-pixel points for DUSt3R, camera centres and points along the
optical axes for COLMAP), weighted when weights are given.
"""

from __future__ import annotations

from typing import Optional

import torch

from ..errors import InputError
from ..geometry.umeyama import Sim3, umeyama
from ..scene import Cameras


def transform_cameras(cameras: Cameras, sim: Sim3) -> Cameras:
    """The cameras moved by ``sim`` (frame A -> frame B), see the module doc."""
    s, R, t = (x.double() if torch.is_tensor(x) else torch.as_tensor(x, dtype=torch.float64) for x in sim)
    Rc = cameras.viewmats[:, :3, :3].double()
    c = cameras.centers.double()
    cB = s * c @ R.T + t
    RcB = Rc @ R.T
    vm = torch.eye(4, dtype=torch.float64).repeat(len(cameras), 1, 1)
    vm[:, :3, :3] = RcB
    vm[:, :3, 3] = -(RcB @ cB[:, :, None])[..., 0]
    return Cameras(cameras.K.clone(), vm.float(), cameras.width, cameras.height)


def camera_anchor_points(cameras: Cameras, depth: float) -> torch.Tensor:
    """(V*4, 3): each camera's centre and the points at ``depth`` along its optical axis and its x and y axes
    -- enough to fix a similarity from cameras alone (used when no per-pixel points correspond)."""
    C = cameras.centers.double()
    R = cameras.viewmats[:, :3, :3].double()  # rows: camera axes in world coordinates
    pts = [C, C + depth * R[:, 2], C + depth * (R[:, 2] + 0.5 * R[:, 0]), C + depth * (R[:, 2] + 0.5 * R[:, 1])]
    return torch.stack(pts, 1).reshape(-1, 3)


def fit_registration(src: torch.Tensor, dst: torch.Tensor, weights: Optional[torch.Tensor] = None) -> Sim3:
    """The Umeyama similarity taking ``src`` (N, 3) onto ``dst`` (N, 3), computed in float64."""
    if src.shape != dst.shape:
        raise InputError("registration", f"{tuple(src.shape)} source points for {tuple(dst.shape)} targets")
    return umeyama(src.double(), dst.double(), None if weights is None else weights.double())


def register_views(joint_train: Cameras, joint_other: Cameras, ref_train: Cameras,
                   src_points: Optional[torch.Tensor] = None, dst_points: Optional[torch.Tensor] = None,
                   weights: Optional[torch.Tensor] = None) -> tuple[Cameras, Sim3, dict]:
    """Bring ``joint_other`` (frame of a joint reconstruction) into the frame of ``ref_train``.

    The similarity is fitted on ``src_points`` -> ``dst_points`` (corresponding points of the train views in
    the joint and the reference frame) when given, else on camera anchor points (``camera_anchor_points``)
    of ``joint_train`` -> ``ref_train`` at the reference's median camera distance. Returns the registered
    cameras, the similarity and diagnostics (RMS residual of the train camera centres, reference units).
    """
    if len(joint_train) != len(ref_train):
        raise InputError("registration", f"{len(joint_train)} joint train cameras for {len(ref_train)} reference ones")
    if src_points is None:
        Cr = ref_train.centers.double()
        spread = float((Cr - Cr.mean(0)).norm(dim=-1).max())
        ratio = spread / max(float((joint_train.centers.double() - joint_train.centers.double().mean(0))
                                   .norm(dim=-1).max()), 1e-12)
        d_ref = max(spread, 1e-6)
        src_points = camera_anchor_points(joint_train, d_ref / max(ratio, 1e-12))
        dst_points = camera_anchor_points(ref_train, d_ref)
    sim = fit_registration(src_points, dst_points, weights)
    moved = transform_cameras(joint_train, sim)
    resid = float((moved.centers.double() - ref_train.centers.double()).norm(dim=-1).square().mean().sqrt())
    return transform_cameras(joint_other, sim), sim, {"scale": float(sim.scale), "train_centre_rms": resid}
