"""The training curve (loss, dev NDCG@10 and any watched sets' dev NDCG@10 per epoch) as a PNG."""

from __future__ import annotations

import io
from typing import Any


def plot_curve(history: list[dict[str, Any]]) -> bytes | None:
    """PNG bytes of the curve; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    ep = [h["epoch"] for h in history if h.get("loss") is not None]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(ep, [h["loss"] for h in history if h.get("loss") is not None], "o-", color="tab:red", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss")
    dev = [(h["epoch"], h["dev"]["ndcg@10"]) for h in history if h.get("dev")]
    watched = sorted({n for h in history for n in h.get("watch", {})})
    if dev or watched:
        ax2 = ax.twinx()
        if dev:
            ax2.plot([e for e, _ in dev], [v for _, v in dev], "s-", color="tab:blue", label="dev NDCG@10")
        colours = ["tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:gray"]  # not dev's blue
        for i, name in enumerate(watched):  # cross-distribution sets, dashed: seen, never used to pick the epoch
            pts = [(h["epoch"], h["watch"][name]["ndcg@10"]) for h in history if name in h.get("watch", {})]
            ax2.plot([e for e, _ in pts], [v for _, v in pts], "^--", color=colours[i % len(colours)],
                     label=f"{name} dev NDCG@10")
        ax2.set_ylabel("dev NDCG@10")
        fig.legend(loc="upper center", ncol=2, fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
