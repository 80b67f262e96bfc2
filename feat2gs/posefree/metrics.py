"""Pose metrics of recovered cameras against reference (dataset) cameras of the same views.

* **ATE** (absolute trajectory error): the camera centres are aligned to the reference ones by the Umeyama
  similarity (scale, rotation, translation); ``ate`` is the RMS distance of the aligned centres, in reference
  units, and ``ate_rel`` the same divided by the reference camera extent (max distance of a centre from their
  mean). Needs >= 3 views (a similarity is not determined by 2 points; for 2 views only RPE is reported).
* **RPE** (relative pose error) over consecutive views (i, i+1): ``rpe_rot_deg`` the angle of
  ``R_rel_est R_rel_ref^T``; ``rpe_trans`` the distance between the relative translations (expressed in the
  reference camera i's frame, the estimate scaled by the ATE scale, else by the ratio of mean baselines).
* Over all pairs: ``rel_rot_deg`` (mean and max) and ``rel_trans_dir_deg`` (angle between the directions of
  the relative translations, scale-free).
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from ..errors import InputError
from ..geometry.umeyama import apply_sim3, umeyama
from ..scene import Cameras


def rotation_angle_deg(R: torch.Tensor) -> torch.Tensor:
    """Angle (degrees) of rotation matrices (..., 3, 3)."""
    R = R.double()
    c = (R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    A = R - R.transpose(-1, -2)  # 2 sin(angle) [axis]x
    sn = torch.stack([A[..., 2, 1], A[..., 0, 2], A[..., 1, 0]], -1).norm(dim=-1) / 2
    return torch.rad2deg(torch.atan2(sn, c))  # accurate near 0 and pi, unlike acos


def _relative(cams: Cameras, i: int, j: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Relative pose of view j in view i's camera frame: rotation R_i R_j^T and translation R_i (C_j - C_i)."""
    R = cams.viewmats[:, :3, :3].double()
    C = cams.centers.double()
    return R[i] @ R[j].T, R[i] @ (C[j] - C[i])


def pairwise_pose_errors(est: Cameras, ref: Cameras) -> dict:
    """Relative rotation / translation-direction errors over all pairs of views (degrees)."""
    if len(est) != len(ref):
        raise InputError("cameras", f"{len(est)} estimated cameras for {len(ref)} reference cameras")
    rot, ang = [], []
    for i in range(len(est)):
        for j in range(len(est)):
            if i == j:
                continue
            Re, te = _relative(est, i, j)
            Rr, tr = _relative(ref, i, j)
            rot.append(float(rotation_angle_deg(Re @ Rr.T)))
            c = float(torch.dot(te, tr) / (te.norm() * tr.norm()).clamp_min(1e-30))
            ang.append(math.degrees(math.acos(max(-1.0, min(1.0, c)))))
    return {"rel_rot_deg_mean": sum(rot) / len(rot), "rel_rot_deg_max": max(rot),
            "rel_trans_dir_deg_mean": sum(ang) / len(ang), "rel_trans_dir_deg_max": max(ang)}


def pose_metrics(est: Cameras, ref: Cameras) -> dict:
    """ATE (after sim(3)), RPE (consecutive views) and all-pairs relative errors; see the module doc."""
    V = len(est)
    if V != len(ref):
        raise InputError("cameras", f"{V} estimated cameras for {len(ref)} reference cameras")
    if V < 2:
        raise InputError("cameras", "pose metrics need at least 2 views")
    Ce, Cr = est.centers.double(), ref.centers.double()
    extent = float((Cr - Cr.mean(0)).norm(dim=-1).max())
    out: dict = {"views": V, "ref_extent": extent}
    scale: Optional[float] = None
    if V >= 3:
        s, R, t = umeyama(Ce, Cr)
        err = (apply_sim3(Ce, s, R, t) - Cr).norm(dim=-1)
        out["ate"] = float(err.square().mean().sqrt())
        out["ate_rel"] = out["ate"] / extent if extent > 0 else None
        out["sim3_scale"] = float(s)
        scale = float(s)
    else:
        out["ate"] = out["ate_rel"] = None
    if scale is None:
        be = (Ce[1:] - Ce[:-1]).norm(dim=-1).mean()
        br = (Cr[1:] - Cr[:-1]).norm(dim=-1).mean()
        scale = float(br / be.clamp_min(1e-30))
    rr, rt = [], []
    for i in range(V - 1):
        Re, te = _relative(est, i, i + 1)
        Rr, tr = _relative(ref, i, i + 1)
        rr.append(float(rotation_angle_deg(Re @ Rr.T)))
        rt.append(float((scale * te - tr).norm()))
    out["rpe_rot_deg"] = sum(rr) / len(rr)
    out["rpe_trans"] = sum(rt) / len(rt)
    out.update(pairwise_pose_errors(est, ref))
    return out
