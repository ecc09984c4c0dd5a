"""PLY in/out in the INRIA 3DGS layout: round trips, header, channel-major f_rest, world transform, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from plyfile import PlyData, PlyElement

from faithfusion.cameras import quat_to_rotmat
from faithfusion.data.scene import SceneTransform
from faithfusion.gaussians.model import GaussianModel, num_sh_bases
from faithfusion.gaussians.ply import PlyFormatError, load_ply, save_ply, sh_basis, sh_rotation

INRIA_DEGREE_1 = [
    "x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2",
    "f_rest_0", "f_rest_1", "f_rest_2", "f_rest_3", "f_rest_4", "f_rest_5", "f_rest_6", "f_rest_7", "f_rest_8",
    "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3",
]  # fmt: skip


def random_model(n: int, degree: int, seed: int = 0) -> GaussianModel:
    g = torch.Generator().manual_seed(seed)
    params = {
        "means": torch.randn(n, 3, generator=g),
        "scales": torch.randn(n, 3, generator=g) - 3,
        "quats": torch.randn(n, 4, generator=g),
        "opacities": torch.randn(n, generator=g),
        "sh0": torch.randn(n, 1, 3, generator=g),
        "shN": torch.randn(n, num_sh_bases(degree) - 1, 3, generator=g),
    }
    return GaussianModel(params, sh_degree=degree)


def random_rotation(seed: int) -> torch.Tensor:
    q = torch.randn(4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return quat_to_rotmat(q / q.norm())


def sh_colour(model: GaussianModel, dirs: torch.Tensor) -> torch.Tensor:  # dirs [N, 3] unit -> [N, 3] raw SH colour
    return torch.einsum("nk,nkc->nc", sh_basis(dirs.double(), model.sh_degree), model.sh_coeffs.double())


@pytest.mark.parametrize("degree", [0, 3])
def test_round_trip_is_exact(tmp_path, degree: int) -> None:
    model = random_model(50, degree)
    save_ply(model, tmp_path / "m.ply")
    back = load_ply(tmp_path / "m.ply")
    assert back.sh_degree == degree and len(back) == 50
    for key, value in model.params.items():
        assert torch.equal(back.params[key], value.detach()), key


def test_header_is_inria(tmp_path) -> None:
    save_ply(random_model(3, 1), tmp_path / "d1.ply")
    raw = (tmp_path / "d1.ply").read_bytes()
    header = raw[: raw.index(b"end_header\n")].decode()
    assert header.startswith("ply\nformat binary_little_endian 1.0\n")
    assert "element vertex 3\n" in header
    props = [line.split() for line in header.splitlines() if line.startswith("property")]
    assert [p[2] for p in props] == INRIA_DEGREE_1
    assert all(p[1] == "float" for p in props)
    # degree 3: 45 f_rest, 62 properties in all, as INRIA writes
    save_ply(random_model(2, 3), tmp_path / "d3.ply")
    names = [p.name for p in PlyData.read(str(tmp_path / "d3.ply"))["vertex"].properties]
    assert len(names) == 62 and names[9:54] == [f"f_rest_{i}" for i in range(45)] and names[54] == "opacity"


def test_f_rest_is_channel_major(tmp_path) -> None:
    model = random_model(1, 1)
    with torch.no_grad():
        # shN[n, coefficient, channel]: coefficient k of R, G, B = 1+k, 4+k, 7+k... laid out by hand
        model.params["shN"][0] = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
        model.params["sh0"][0, 0] = torch.tensor([0.1, 0.2, 0.3])
    save_ply(model, tmp_path / "m.ply")
    v = PlyData.read(str(tmp_path / "m.ply"))["vertex"][0]
    assert [v[f"f_rest_{i}"] for i in range(9)] == [1.0, 4.0, 7.0, 2.0, 5.0, 8.0, 3.0, 6.0, 9.0]  # R coeffs, G, B
    assert [v[f"f_dc_{i}"] for i in range(3)] == pytest.approx([0.1, 0.2, 0.3])
    assert [v[f"n{c}"] for c in "xyz"] == [0.0, 0.0, 0.0]


def test_stored_activations(tmp_path) -> None:
    """opacity is the logit, scales the log, rot wxyz as stored: the values go to the file untouched."""
    model = random_model(4, 0)
    save_ply(model, tmp_path / "m.ply")
    v = PlyData.read(str(tmp_path / "m.ply"))["vertex"].data
    assert np.array_equal(v["opacity"], model.params["opacities"].detach().numpy())
    assert np.array_equal(v["scale_1"], model.params["scales"][:, 1].detach().numpy())
    assert np.array_equal(v["rot_0"], model.params["quats"][:, 0].detach().numpy())


def test_sh_rotation_is_exact() -> None:
    R = random_rotation(5)
    A = sh_rotation(R, 3)  # Y(R d) = Y(d) A
    d = torch.nn.functional.normalize(torch.randn(200, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64), dim=-1)
    assert torch.allclose(sh_basis(d @ R.T, 3), sh_basis(d, 3) @ A, atol=1e-12)
    # band 1 by hand: c(d) = C1 * d . u with u = (-f3, -f1, f2), so rotating directions rotates u
    C1 = 0.4886025119029199
    f = torch.tensor([0.3, -0.7, 1.1], dtype=torch.float64)
    u = torch.stack([-f[2], -f[0], f[1]])
    assert torch.allclose(sh_basis(d, 1)[:, 1:] @ f, C1 * d @ u, atol=1e-12)
    f_new = A[1:4, 1:4] @ f  # colour at d equals old colour at R d: u_new = R^T u
    u_new = torch.stack([-f_new[2], -f_new[0], f_new[1]])
    assert torch.allclose(u_new, R.T @ u, atol=1e-12)


@pytest.mark.parametrize("degree", [1, 3])
def test_transform_saves_world_units_and_round_trips(tmp_path, degree: int) -> None:
    model = random_model(40, degree, seed=7)
    T = SceneTransform(torch.tensor([10.0, -4.0, 2.5]), random_rotation(8).float(), 0.05)
    save_ply(model, tmp_path / "w.ply", transform=T)
    world = load_ply(tmp_path / "w.ply")
    # means and sizes in metres
    assert torch.allclose(world.means, T.points_to_world(model.means.detach()), rtol=1e-5, atol=1e-4)
    assert torch.allclose(world.scales, model.scales.detach() / T.scale, rtol=1e-5)
    # covariances: Sigma_w = R^T Sigma_s R / s^2
    def cov(m: GaussianModel) -> torch.Tensor:
        Q = quat_to_rotmat(m.params["quats"].detach().double())
        S = torch.diag_embed(m.scales.detach().double() ** 2)
        return Q @ S @ Q.transpose(-1, -2)

    R = T.rotation.double()
    assert torch.allclose(cov(world), R.T @ cov(model) @ R / T.scale**2, rtol=1e-4, atol=1e-10)
    # view-dependent colour: world direction d_w looks like scene direction R d_w
    d_w = torch.nn.functional.normalize(torch.randn(40, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64), dim=-1)
    assert torch.allclose(sh_colour(world, d_w), sh_colour(model, d_w @ R.T), atol=1e-4)
    assert torch.equal(world.params["opacities"], model.params["opacities"].detach())
    # and back into scene units
    back = load_ply(tmp_path / "w.ply", transform=T)
    assert torch.allclose(back.means, model.means.detach(), atol=1e-5)
    assert torch.allclose(back.params["scales"], model.params["scales"].detach(), atol=1e-5)
    assert torch.allclose(back.params["shN"], model.params["shN"].detach(), atol=1e-4)
    q0, q1 = model.quats.detach(), back.quats
    assert torch.allclose(q1 * torch.sign((q0 * q1).sum(-1, keepdim=True)), q0, atol=1e-5)


def test_identity_rotation_transform_only_moves_and_scales(tmp_path) -> None:
    model = random_model(10, 3, seed=11)
    T = SceneTransform(torch.tensor([100.0, 50.0, -3.0]), torch.eye(3), 0.02)
    save_ply(model, tmp_path / "w.ply", transform=T)
    world = load_ply(tmp_path / "w.ply")
    assert torch.equal(world.params["quats"], model.params["quats"].detach())
    assert torch.equal(world.params["shN"], model.params["shN"].detach())
    assert torch.allclose(world.params["scales"], model.params["scales"].detach() - math.log(0.02), atol=1e-5)
    assert torch.allclose(world.means, T.points_to_world(model.means.detach()), atol=1e-3)


def test_overwrite_protection_and_atomic_write(tmp_path) -> None:
    path = tmp_path / "sub" / "m.ply"
    save_ply(random_model(5, 0), path)
    with pytest.raises(FileExistsError, match="m.ply"):
        save_ply(random_model(6, 0), path)
    assert len(load_ply(path)) == 5
    save_ply(random_model(6, 0), path, overwrite=True)
    assert len(load_ply(path)) == 6
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.ply"]  # no temp file left behind


def test_corrupt_files_name_the_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nothere.ply"):
        load_ply(tmp_path / "nothere.ply")
    empty = tmp_path / "empty.ply"
    empty.write_bytes(b"")
    with pytest.raises(PlyFormatError, match="empty.ply.*empty"):
        load_ply(empty)
    junk = tmp_path / "junk.ply"
    junk.write_text("this is not a ply file\n")
    with pytest.raises(PlyFormatError, match="junk.ply.*not a PLY"):
        load_ply(junk)
    good = tmp_path / "good.ply"
    save_ply(random_model(20, 1), good)
    cut = tmp_path / "cut.ply"
    cut.write_bytes(good.read_bytes()[:-50])  # truncated data
    with pytest.raises(PlyFormatError, match="cut.ply"):
        load_ply(cut)
    plain = tmp_path / "points.ply"  # a plain point cloud: xyz + colours only
    pts = np.zeros(4, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    PlyData([PlyElement.describe(pts, "vertex")]).write(str(plain))
    with pytest.raises(PlyFormatError, match=r"points.ply lacks the 3DGS properties \['f_dc_0'"):
        load_ply(plain)
    zero = tmp_path / "zero.ply"
    names = [p.name for p in PlyData.read(str(good))["vertex"].properties]
    PlyData([PlyElement.describe(np.zeros(0, dtype=[(n, "<f4") for n in names]), "vertex")]).write(str(zero))
    with pytest.raises(PlyFormatError, match="zero.ply holds no Gaussians"):
        load_ply(zero)
    odd = tmp_path / "odd.ply"  # 6 f_rest: no SH degree has 3 bases
    odd_names = [n for n in names if not n.startswith("f_rest_")][:9] + [f"f_rest_{i}" for i in range(6)] + names[18:]
    PlyData([PlyElement.describe(np.zeros(2, dtype=[(n, "<f4") for n in odd_names]), "vertex")]).write(str(odd))
    with pytest.raises(PlyFormatError, match="odd.ply has 6 f_rest"):
        load_ply(odd)


def test_loads_other_exporters_property_order_and_doubles(tmp_path) -> None:
    """Properties are read by name: a file with another order, doubles and no normals loads the same."""
    model = random_model(7, 1, seed=12)
    save_ply(model, tmp_path / "m.ply")
    data = PlyData.read(str(tmp_path / "m.ply"))["vertex"].data
    names = [n for n in data.dtype.names if not n.startswith("n")][::-1]
    other = np.zeros(len(data), dtype=[(n, "<f8") for n in names])
    for n in names:
        other[n] = data[n]
    PlyData([PlyElement.describe(other, "vertex")], text=True).write(str(tmp_path / "o.ply"))
    back = load_ply(tmp_path / "o.ply")
    for key, value in model.params.items():
        assert torch.equal(back.params[key], value.detach()), key


def test_sh_basis_matches_the_renderer() -> None:
    """The basis used to rotate SH on save is the one the renderer evaluates (same signs and order)."""
    sh = pytest.importorskip("faithfusion.render.sh")
    if not hasattr(sh, "eval_sh_bases"):
        pytest.skip("faithfusion.render.sh has no eval_sh_bases")
    d = torch.nn.functional.normalize(torch.randn(300, 3, generator=torch.Generator().manual_seed(13), dtype=torch.float64), dim=-1)
    assert torch.allclose(sh.eval_sh_bases(3, d), sh_basis(d, 3), atol=1e-12)
