"""Moving traffic as a scene graph: a background plus one rigid Gaussian node per tracked vehicle (docs/scene_graph.md)."""
