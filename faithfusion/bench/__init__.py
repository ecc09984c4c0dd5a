"""`faithfusion bench`'s measurements: the project's training, render, EIG, fixers and fusion methods timed against
plain references (a minimal gsplat loop, gsplat's `rasterization`), each in a module of its own.

timing.py    synchronised wall-clock timing with warm-up and repeats, peak memory
info.py      what was measured where: device, commit, library versions
scene.py     the scene a benchmark runs on (SynthStreet made on the fly, or a folder)
training.py  (a) the project's trainer against a minimal training loop on the same Gaussians
render.py    (b) the render alone against gsplat's `rasterization`
eig.py       (c) an EIG map and H_train against a training iteration and a training pass
fixers.py    (d) each shipped fixer's frames per second
fusion.py    (e) each fusion method end to end against 3DGS with the same steps
run.py       all of them in one JSON
"""
