"""The peephole LSTM of LSTM-DSSM (Palangi et al., 2016), written out because ``torch.nn.LSTM`` has no
peepholes.

    f = σ(W_f x + U_f h' + p_f ⊙ c' + b_f)
    i = σ(W_i x + U_i h' + p_i ⊙ c' + b_i)
    c = f ⊙ c' + i ⊙ tanh(W_c x + U_c h' + b_c)
    o = σ(W_o x + U_o h' + p_o ⊙ c + b_o)          (the output gate sees the *new* cell)
    h = o ⊙ tanh(c)

Gate blocks are stacked in ``torch.nn.LSTM``'s order (i, f, g, o), so that with the peepholes at
zero the weights can be copied either way and the two agree (a test checks this).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class PeepholeLSTMCell(nn.Module):
    """One time step. ``weight_ih`` (4H, E), ``weight_hh`` (4H, H), ``bias`` (4H,), peepholes (H,) each."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.empty(4 * hidden_size))
        self.peep_i = nn.Parameter(torch.empty(hidden_size))
        self.peep_f = nn.Parameter(torch.empty(hidden_size))
        self.peep_o = nn.Parameter(torch.empty(hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # As torch.nn.LSTM: U(-1/√H, 1/√H); then the forget-gate bias at 1 so that early in training
        # the cell keeps what it read (Jozefowicz et al., 2015) — it matters for long documents.
        k = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -k, k)
        with torch.no_grad():
            self.bias[self.hidden_size : 2 * self.hidden_size].fill_(1.0)

    @property
    def peep_if(self) -> Tensor:
        return torch.stack([self.peep_i, self.peep_f])  # (2, H)

    def input_projection(self, x: Tensor) -> Tensor:
        """W x + b for every time step at once: (..., E) → (..., 4H). One matmul, outside the loop."""
        return torch.nn.functional.linear(x, self.weight_ih, self.bias)

    def step(self, gx: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        """One step from the precomputed input projection ``gx`` (B, 4H) and state h, c (B, H)."""
        gates = torch.addmm(gx, h, self.weight_hh.t()).view(-1, 4, self.hidden_size)  # (B, 4, H)
        # i and f in one sigmoid: their peepholes (2, H) both look at the previous cell c (B, 1, H).
        i_f = torch.sigmoid(torch.addcmul(gates[:, :2], self.peep_if, c.unsqueeze(1)))  # (B, 2, H)
        i, f = i_f[:, 0], i_f[:, 1]
        zg, zo = gates[:, 2], gates[:, 3]
        c_new = torch.addcmul(f * c, i, torch.tanh(zg))
        o = torch.sigmoid(zo + self.peep_o * c_new)
        h_new = o * torch.tanh(c_new)
        return h_new, c_new

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """x (B, E), state = (h, c) each (B, H) → (h, c) of the next step."""
        return self.step(self.input_projection(x), *state)


class PeepholeLSTM(nn.Module):
    """Runs :class:`PeepholeLSTMCell` over time, with per-text lengths.

    Texts are sorted by length (longest first), so at step t the texts that still have a word are a
    prefix of the batch: only those rows are computed, the others keep their state. Work is therefore
    proportional to the real number of words, not to batch × longest text, and the state returned is
    the one at each text's true last word: a text's vector is the same alone or in a padded batch.
    Returns the final (h, c), each (B, H), and optionally all hidden states (B, T, H) (past a text's
    end its row repeats the final state; poolers mask it).
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.cell = PeepholeLSTMCell(input_size, hidden_size)
        self.hidden_size = hidden_size

    def forward(
        self, x: Tensor, lengths: Tensor, return_sequence: bool = False
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """x (B, T, E), lengths (B,) → h (B, H), c (B, H), sequence (B, T, H) or None."""
        B, T, _ = x.shape
        lengths, order = lengths.sort(descending=True, stable=True)
        gx = self.cell.input_projection(x[order])  # (B, T, 4H): all steps' input terms in one matmul
        # active[t]: how many (sorted) texts still have a word at step t.
        active = (lengths.unsqueeze(0) > torch.arange(T).unsqueeze(1)).sum(1).tolist()
        h = x.new_zeros(B, self.hidden_size)
        c = x.new_zeros(B, self.hidden_size)
        seq = []
        # unbind, not gx[:, t]: the backward of T slices would each allocate a full (B, T, 4H) gradient.
        for gx_t, n in zip(gx.unbind(1), active, strict=True):
            if n == 0:
                break
            h_n, c_n = self.cell.step(gx_t[:n], h[:n], c[:n])
            # New tensors, not in-place writes, so autograd keeps every step's state.
            h = h_n if n == B else torch.cat([h_n, h[n:]])
            c = c_n if n == B else torch.cat([c_n, c[n:]])
            if return_sequence:
                seq.append(h)
        inv = order.argsort()  # back to the caller's order
        h, c = h[inv], c[inv]
        if not return_sequence:
            return h, c, None
        if not seq:
            return h, c, x.new_zeros(B, T, self.hidden_size)
        out = torch.stack(seq, dim=1)[inv]  # (B, t_max, H)
        if out.shape[1] < T:  # steps after every text ended: repeat the final state
            out = torch.cat([out, out[:, -1:].expand(B, T - out.shape[1], -1)], dim=1)
        return h, c, out
