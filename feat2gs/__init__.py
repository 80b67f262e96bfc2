"""feat2gs: probe the 3D awareness of visual foundation models with feed-forward Gaussian splatting."""

import os as _os

# Idle OpenMP threads sleep instead of spinning. Spinning threads make every parallel op wait for cores
# that other processes hold, which on a busy 2-core machine slowed training steps 5-20x. Effective only
# when feat2gs is imported before torch (the `feat2gs` command does so); set OMP_WAIT_POLICY to override.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
