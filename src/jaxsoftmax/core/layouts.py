"""How a sweep of K models holds its weights: the layouts, and the conversion to and from
one model's layout."""

import jax

CLASS_MAJOR = "class_major"
FEATURE_MAJOR = "feature_major"
LAYOUTS = (CLASS_MAJOR, FEATURE_MAJOR)


def to_layout(tree, layout: str):
    """Converts a sweep's weight matrices between one model's layout and `layout` (both ways).

    One model's weights are (features, classes); a sweep of K holds them as
    (K, features, classes) in the `feature_major` layout (plain `jax.vmap`), or, in the
    `class_major` layout, together with optimiser state shaped like them, as
    (K, classes, features). Then XLA's CPU backend computes the weight gradient of all
    K models as one (K * classes, features) matrix that the update consumes in place
    (K=300: 47% to 53% of the matrix-multiply peak); on an H100 the feature-major
    layout was faster (K=1000: 5.26 M against 2.26 M model-steps/s). See
    benchmarks/RESULTS.md. Leaves other than `w` pass through.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; the layouts are {', '.join(LAYOUTS)}")
    if layout == FEATURE_MAJOR:
        return tree

    def convert(path, leaf):
        is_weights = path and getattr(path[-1], "key", None) == "w"
        # A method, not jnp.swapaxes: host (NumPy) copies stay on the host.
        return leaf.swapaxes(-1, -2) if is_weights else leaf

    return jax.tree_util.tree_map_with_path(convert, tree)
