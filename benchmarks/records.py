"""Typed run records: a run's identity (what was run) and its results (what came out).

``RunIdentity`` holds the labels a leaderboard groups by (scene, dataset, split, backbone, mode, init, seed,
preset) and ``config_hash``, the SHA-256 of the resolved config without the keys that only say where files
go (``output``, ``cache``, ``device``, ``train.log_every``). ``run_id`` is the content hash of the identity
(every field except the labels ``dataset`` and ``preset``, which the config hash already covers), so a run
re-indexed from its folder gets the id the sweep gave it.

``RunResult`` holds every metric, coverage, timings, peak memory, device, versions, git revision, status
and error. The store's columns, the CSV/Parquet exports and the report read these dataclasses: adding a
metric is adding a field here (and reading it in :func:`result_from_files`).

``record_from_run_dir`` builds a :class:`RunRecord` from a run folder (``config.yaml``, ``meta.json``,
``metrics.json`` and, for runs made by a sweep, ``job.json``). It reads ``metrics.json``'s flat ``summary``
dict when present and falls back to the older nested layout (``nvs``, ``geometry``, ``scene``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from feat2gs.errors import InputError

#: run statuses (``running``: dispatched by a sweep that has not recorded it yet)
COMPLETE, FAILED, RUNNING = "complete", "failed", "running"
STATUSES = (COMPLETE, FAILED, RUNNING)

#: config keys that do not change a run's result (where files go, log cadence, which device ran it)
VOLATILE_KEYS = ("output", "cache", "device", "train.log_every")

#: the sweep's own file in a run folder, written after every file of the run (peak memory, labels)
JOB_FILE = "job.json"

#: files every complete run folder has (``renders/`` too when ``eval.save_renders``)
REQUIRED_FILES = ("config.yaml", "meta.json", "metrics.json", "gaussians.ply", "poses.pt")

#: names of the controls: no backbone (``iuvrgb``), i.i.d. codes (``noise``), ``random-<net>``
CONTROL_NAMES = ("iuvrgb", "noise")
RANDOM_PREFIX = "random-"


def is_control(backbone: str) -> bool:
    return backbone in CONTROL_NAMES or backbone.startswith(RANDOM_PREFIX)


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _drop(tree: dict, dotted: str) -> None:
    *parents, last = dotted.split(".")
    node = tree
    for p in parents:
        node = node.get(p) if isinstance(node, dict) else None
        if node is None:
            return
    if isinstance(node, dict):
        node.pop(last, None)


def config_hash(config: dict) -> str:
    """SHA-256 of a resolved config (a plain dict) without :data:`VOLATILE_KEYS`."""
    tree = json.loads(canonical_json(config))
    for key in VOLATILE_KEYS:
        _drop(tree, key)
    return sha256_text(canonical_json(tree))


# --------------------------------------------------------------------------------------------- identity
@dataclass(frozen=True)
class RunIdentity:
    scene: str  # scene name (folder name, or "synthetic")
    dataset: str  # label: the dataset the scene belongs to
    split: str  # the split's name or rule
    backbone: str
    mode: str  # G | T | A
    init: str
    seed: int
    preset: Optional[str]  # label: the preset the config was built from
    config_hash: str

    @property
    def run_id(self) -> str:
        d = asdict(self)
        d.pop("dataset")
        d.pop("preset")
        return sha256_text("feat2gs-run-v1" + canonical_json(d))[:20]

    @property
    def label(self) -> str:
        return f"{self.dataset}/{self.scene} {self.backbone} {self.mode} seed {self.seed}"


def _scene_labels(config: dict) -> tuple[str, str]:
    """(scene name, dataset label) from a config's ``scene.path``: ``synthetic`` -> (synthetic, synthetic);
    ``.../llff/fern`` -> (fern, llff)."""
    path = str((config.get("scene") or {}).get("path", ""))
    if path == "synthetic":
        return "synthetic", "synthetic"
    p = Path(path)
    return p.name or path, p.parent.name or "-"


def split_label(config: dict) -> str:
    """``<name>:<n_train>/<n_test>`` (``default:3/3``), or the explicit indices."""
    s = config.get("split") or {}
    if s.get("train") is None and s.get("name"):
        return f"{s['name']}:{s.get('n_train', '?')}/{s.get('n_test') if s.get('n_test') is not None else 'all'}"
    if s.get("train") is not None:
        label = "train=" + ",".join(map(str, s["train"]))
        if s.get("test_indices") is not None:
            label += ";test=" + ",".join(map(str, s["test_indices"]))
        return label
    return f"{s.get('test', '?')}:{s.get('n_train', '?')}/{s.get('n_test') if s.get('n_test') is not None else 'all'}"


def backbone_label(name: Any) -> str:
    return "+".join(map(str, name)) if isinstance(name, (list, tuple)) else str(name)


def identity_from_config(config: dict, preset: Optional[str] = None, dataset: Optional[str] = None) -> RunIdentity:
    """The identity of a run of ``config`` (a resolved config as a plain dict)."""
    scene, ds = _scene_labels(config)
    return RunIdentity(scene=scene, dataset=dataset or ds, split=split_label(config),
                       backbone=backbone_label(config["backbone"]["name"]), mode=str(config["probe"]["mode"]),
                       init=str(config["init"]["name"]), seed=int(config["seed"]), preset=preset,
                       config_hash=config_hash(config))


# ---------------------------------------------------------------------------------------------- results
@dataclass
class RunResult:
    status: str = RUNNING
    error: Optional[str] = None
    # novel-view metrics (means over test views; masked unless *_full)
    psnr: Optional[float] = None
    psnr_full: Optional[float] = None
    psnr_no_pose_refine: Optional[float] = None
    ssim: Optional[float] = None
    ssim_full: Optional[float] = None
    lpips: Optional[float] = None
    mean_colour_psnr: Optional[float] = None
    # 3D metrics (Gaussian means vs GT points), in geometry_units
    accuracy: Optional[float] = None
    completeness: Optional[float] = None
    distance: Optional[float] = None
    geometry_units: Optional[str] = None
    # scene / probe facts
    gaussians: Optional[int] = None
    train_coverage: Optional[float] = None
    eval_coverage: Optional[float] = None
    eval_mask_sha256: Optional[str] = None
    final_photo_loss: Optional[float] = None
    renderer: Optional[str] = None
    # compute
    wall_s: Optional[float] = None
    prepare_scene_s: Optional[float] = None
    features_s: Optional[float] = None
    train_s: Optional[float] = None
    evaluate_s: Optional[float] = None
    peak_mem_mb: Optional[float] = None  # peak resident memory of the process during the run
    peak_gpu_mem_mb: Optional[float] = None
    device: Optional[str] = None
    # provenance
    git_commit: Optional[str] = None
    git_dirty: Optional[bool] = None
    versions: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    suite: Optional[str] = None
    run_dir: Optional[str] = None
    started: Optional[str] = None
    finished: Optional[str] = None


#: per-view metric names read from metrics.json's ``views`` entries (numbers only)
@dataclass
class ViewMetric:
    view: int
    name: str
    metric: str
    value: Optional[float]


@dataclass
class Artefact:
    kind: str  # file name relative to the run folder
    path: str  # absolute path
    bytes: int


@dataclass
class RunRecord:
    identity: RunIdentity
    result: RunResult
    views: list[ViewMetric] = field(default_factory=list)
    artefacts: list[Artefact] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.identity.run_id

    @property
    def status(self) -> str:
        return self.result.status


def identity_fields() -> list[str]:
    return [f.name for f in fields(RunIdentity)]


def result_fields() -> list[str]:
    return [f.name for f in fields(RunResult)]


# ------------------------------------------------------------------------------------------ from files
def _read_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise InputError(str(path), f"unreadable JSON ({e})") from None


def _num(v: Any) -> Optional[float]:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def result_from_files(meta: dict, metrics: Optional[dict], job: Optional[dict]) -> RunResult:
    """A :class:`RunResult` from a run folder's meta.json, metrics.json (None when absent) and job.json."""
    r = RunResult(status=str(meta.get("status", RUNNING)), error=meta.get("error"))
    t = meta.get("timings_s") or {}
    r.prepare_scene_s, r.features_s = _num(t.get("prepare_scene")), _num(t.get("features"))
    r.train_s, r.evaluate_s = _num(t.get("train")), _num(t.get("evaluate"))
    git = meta.get("git") or {}
    r.git_commit, r.git_dirty = git.get("commit"), git.get("dirty")
    r.versions = dict(meta.get("versions") or {})
    r.started, r.finished = meta.get("started"), meta.get("finished")
    host = meta.get("host") or {}
    r.device = host.get("cuda") or ("cpu" if host else None)
    if metrics:
        s = metrics.get("summary")
        if isinstance(s, dict):  # the flat summary (one key per leaderboard metric)
            for k in ("psnr", "psnr_full", "psnr_no_pose_refine", "ssim", "ssim_full", "lpips",
                      "train_coverage", "eval_coverage"):
                setattr(r, k, _num(s.get(k)))
            r.mean_colour_psnr = _num(s.get("mean_colour_psnr", s.get("mean_color_psnr")))
            r.gaussians = int(s["gaussians"]) if _num(s.get("gaussians")) is not None else None
            r.eval_mask_sha256 = s.get("eval_mask_sha256")
            r.warnings = list(s.get("warnings") or [])
            r.accuracy, r.completeness, r.distance = (_num(s.get(k)) for k in ("accuracy", "completeness", "distance"))
            r.geometry_units = s.get("geometry_units")
        nvs = metrics.get("nvs") or {}  # the nested layout (fills what the summary does not have)
        for k, src in (("psnr", "psnr"), ("ssim", "ssim"), ("lpips", "lpips"), ("mean_colour_psnr", "mean_color_psnr")):
            if getattr(r, k) is None:
                setattr(r, k, _num(nvs.get(src)))
        if r.gaussians is None and _num((metrics.get("scene") or {}).get("gaussians")) is not None:
            r.gaussians = int(metrics["scene"]["gaussians"])
        if r.eval_coverage is None:
            r.eval_coverage = _num((metrics.get("scene") or {}).get("test_valid_fraction"))
        g = metrics.get("geometry") or {}
        for k in ("accuracy", "completeness", "distance"):
            if getattr(r, k) is None:
                setattr(r, k, _num(g.get(k)))
        r.geometry_units = r.geometry_units or g.get("units")
        r.final_photo_loss = _num((metrics.get("train") or {}).get("final_photo_loss"))
        r.renderer = metrics.get("renderer")
    if job:
        r.wall_s = _num(job.get("wall_s"))
        if _num(job.get("prepare_scene_s")) is not None:  # the sweep ran these stages before run_probe
            r.prepare_scene_s, r.features_s = _num(job.get("prepare_scene_s")), _num(job.get("features_s"))
        r.peak_mem_mb, r.peak_gpu_mem_mb = _num(job.get("peak_mem_mb")), _num(job.get("peak_gpu_mem_mb"))
        r.device = job.get("device") or r.device
        r.suite = job.get("suite")
    if r.wall_s is None and t:
        r.wall_s = float(sum(v for v in t.values() if _num(v) is not None))
    return r


def views_from_metrics(metrics: Optional[dict]) -> list[ViewMetric]:
    out = []
    for i, v in enumerate((metrics or {}).get("views") or []):
        for k, val in v.items():
            if k != "name" and (val is None or _num(val) is not None):
                out.append(ViewMetric(i, str(v.get("name", i)), k, _num(val)))
    return out


def artefacts_of(run_dir: Path) -> list[Artefact]:
    out = []
    for p in sorted(run_dir.rglob("*")):
        if p.is_file() and not p.name.endswith(".tmp"):
            out.append(Artefact(str(p.relative_to(run_dir)), str(p.resolve()), p.stat().st_size))
    return out


def missing_files(run_dir: Path, config: dict, sweep: bool = False) -> list[str]:
    """The files a complete run folder must have that ``run_dir`` lacks."""
    need = list(REQUIRED_FILES) + ([JOB_FILE] if sweep else [])
    miss = [n for n in need if not (run_dir / n).is_file()]
    if ((config.get("eval") or {}).get("save_renders", True) and not any((run_dir / "renders").glob("*_render.png"))):
        miss.append("renders/*_render.png")
    return miss


def record_from_run_dir(run_dir: Path, preset: Optional[str] = None, dataset: Optional[str] = None,
                        require_job: bool = False) -> RunRecord:
    """The record of a run folder. A folder whose meta.json says complete but that lacks one of its files
    is recorded as failed (never counted as complete). InputError when the folder is not a run folder."""
    import yaml

    run_dir = Path(run_dir)
    cfg_path, meta_path = run_dir / "config.yaml", run_dir / "meta.json"
    if not cfg_path.is_file() or not meta_path.is_file():
        raise InputError(str(run_dir), "not a run folder (needs config.yaml and meta.json)")
    try:
        config = yaml.safe_load(cfg_path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise InputError(str(cfg_path), f"unreadable config ({e})") from None
    if not isinstance(config, dict) or not all(k in config for k in ("scene", "backbone", "probe", "init", "seed")):
        raise InputError(str(cfg_path), "not a feat2gs run config (needs scene, backbone, probe, init, seed)")
    meta = _read_json(meta_path) or {}
    job = _read_json(run_dir / JOB_FILE)
    if job:
        preset = preset or job.get("preset")
        dataset = dataset or job.get("dataset")
    metrics = _read_json(run_dir / "metrics.json")
    identity = identity_from_config(config, preset=preset, dataset=dataset)
    result = result_from_files(meta, metrics, job)
    result.run_dir = str(run_dir.resolve())
    if result.status == COMPLETE:
        miss = missing_files(run_dir, config, sweep=require_job)
        if miss:
            result.status = FAILED
            result.error = f"incomplete run folder: missing {', '.join(miss)}"
    elif result.status == RUNNING:  # a folder is indexed only once its run has ended
        result.status = FAILED
        result.error = "incomplete run folder: meta.json still says running (interrupted, or still running)"
    elif result.status != FAILED:
        result.status = FAILED
        result.error = result.error or f"unknown status {meta.get('status')!r} in meta.json"
    views = views_from_metrics(metrics) if result.status == COMPLETE else []
    arts = artefacts_of(run_dir) if result.status == COMPLETE else []
    return RunRecord(identity, result, views, arts)
