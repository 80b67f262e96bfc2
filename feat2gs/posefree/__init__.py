"""Pose-free scenes: scene graphs of image pairs, pairwise point-map inference (DUSt3R / MASt3R), our own
global alignment of the pairwise point maps into cameras + one point per pixel, the registration of extra
views into a reconstruction's frame by a similarity, and pose metrics against dataset poses.

Modules: ``graph`` (pairs), ``pairwise`` (typed pairwise predictions + network inference), ``alignment``
(the global optimiser), ``register`` (sim(3) composition of cameras, view registration), ``metrics``
(ATE / RPE), ``cache`` (on-disk cache of reconstructions).
"""
