"""Figures. The class colours come from config (classes[].color): the one palette of the project."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dualgen.artifacts import atomic_path  # noqa: E402


def class_colors(classes):
    """uint8 (K, 3) display colours from config's classes[].color."""
    return np.array([[int(c["color"][i:i + 2], 16) for i in (1, 3, 5)] for c in classes], dtype=np.uint8)


def colorize(mask, classes):
    return class_colors(classes)[np.asarray(mask, dtype=np.intp)]


def as_rgb(image):
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    return image


def show_image(ax, image, title=None):
    image = as_rgb(image)
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def legend(fig, classes):
    from matplotlib.patches import Patch

    handles = [Patch(color=np.array(c) / 255, label=cls["name"]) for c, cls in zip(class_colors(classes), classes)]
    fig.legend(handles=handles, loc="lower center", ncol=len(classes), fontsize=8, frameon=False)


def save(fig, path, dpi=110):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight")
    plt.close(fig)


def pair_grid(rows, classes, path, title=None):
    """rows: list of (label, [(image, mask), ...]) -> a figure with image and colourised mask side by side."""
    ncols = max(len(items) for _, items in rows) * 2
    fig, axes = plt.subplots(len(rows), ncols, figsize=(ncols * 1.2, len(rows) * 1.35 + 0.5), squeeze=False)
    for r, (label, items) in enumerate(rows):
        for ax in axes[r]:
            ax.axis("off")
        for i, (image, mask) in enumerate(items):
            show_image(axes[r, 2 * i], image)
            axes[r, 2 * i + 1].imshow(colorize(mask, classes), interpolation="nearest")
            axes[r, 2 * i].axis("on")
            axes[r, 2 * i + 1].axis("on")
            for ax in (axes[r, 2 * i], axes[r, 2 * i + 1]):
                ax.set_xticks([])
                ax.set_yticks([])
        axes[r, 0].set_ylabel(label, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    legend(fig, classes)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    save(fig, path)
