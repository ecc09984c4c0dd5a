"""gsplat 1.5.3's rasterization constants, shared by the renderer and the Fisher/EIG code."""

TILE_SIZE = 16  # side of the tiles the Gaussians are listed on
BLOCK_SIZE = 8  # compositing block: each tile's list is cut to its BLOCK_SIZE x BLOCK_SIZE quarters
ALPHA_THRESHOLD = 1.0 / 255.0  # pairs with a smaller alpha are skipped
MAX_ALPHA = 0.999  # alpha is clamped here
T_STOP = 1e-4  # a pixel stops before the Gaussian whose next transmittance would be <= this
EXTEND_MAX = 3.33  # radius in standard deviations, before the opacity-aware bound
FOV_MARGIN = 0.3  # the Jacobian's tangent is clamped at (1 + 0.3) x the image half-extent
CHUNK_PAIRS = 1 << 18  # pixel x Gaussian pairs per compositing chunk (bounds the working memory)
