"""Fisher information and per-pixel expected information gain (EIG) of a Gaussian scene.

    fisher.py       the exact per-pixel diagonal Fisher of the Gaussians over views (fast path)
    oracle.py       the same (and the per-pixel variance) by brute-force autograd (tests)
    maps.py         the production EIG maps: the paper's fisherrf / faithfusion forms and "pixel"
    pixel.py        pixel EIG: the per-pixel Laplace variance with a per-group prior (+ triton_pixel.py on CUDA)
    variants.py     research variants of the acquisition and the map (eig-analysis --variants)
    calibrate.py    a scene-independent EIG scale, loss weights and repaint masks (JSON statistics)
    accumulator.py  H_train that grows with added (pseudo-)views and follows densification
    session.py      a trained run made ready: H_train over its training views + calibration
    command.py      `faithfusion eig` (EigConfig, run_eig)
    analysis.py     does EIG predict the error of lane-shifted renders (SynthStreet)?
    blend.py, jacobian.py   the pair loop's parts (over `render.raster`'s projection, tile lists and chunks)
    toy.py, heatmap.py      helpers
"""

from faithfusion.eig.accumulator import FisherAccumulator
from faithfusion.eig.calibrate import Calibration, fit_calibration
from faithfusion.eig.fisher import PARAM_GROUPS, fisher_diagonal, view_fisher
from faithfusion.eig.maps import EigMap, acquisition, eig_map

__all__ = [
    "PARAM_GROUPS", "fisher_diagonal", "view_fisher", "acquisition", "eig_map", "EigMap",
    "Calibration", "fit_calibration", "FisherAccumulator",
]
