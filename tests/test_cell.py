import torch

from models.cell import PeepholeLSTM, PeepholeLSTMCell


def hand_step(x, h, c, cell):
    """The equations of the design, written out gate by gate (no chunking, no fusing)."""
    H = cell.hidden_size
    W, U, b = cell.weight_ih, cell.weight_hh, cell.bias
    Wi, Wf, Wg, Wo = (W[k * H : (k + 1) * H] for k in range(4))
    Ui, Uf, Ug, Uo = (U[k * H : (k + 1) * H] for k in range(4))
    bi, bf, bg, bo = (b[k * H : (k + 1) * H] for k in range(4))
    f = torch.sigmoid(x @ Wf.T + h @ Uf.T + cell.peep_f * c + bf)
    i = torch.sigmoid(x @ Wi.T + h @ Ui.T + cell.peep_i * c + bi)
    c_new = f * c + i * torch.tanh(x @ Wg.T + h @ Ug.T + bg)
    o = torch.sigmoid(x @ Wo.T + h @ Uo.T + cell.peep_o * c_new + bo)
    return o * torch.tanh(c_new), c_new


def test_cell_matches_hand_computation():
    torch.manual_seed(0)
    cell = PeepholeLSTMCell(5, 4)
    with torch.no_grad():  # peepholes large enough to matter
        for p in (cell.peep_i, cell.peep_f, cell.peep_o):
            p.uniform_(-2, 2)
    x, h, c = torch.randn(3, 5), torch.randn(3, 4), torch.randn(3, 4)
    got_h, got_c = cell(x, (h, c))
    want_h, want_c = hand_step(x, h, c, cell)
    torch.testing.assert_close(got_h, want_h)
    torch.testing.assert_close(got_c, want_c)


def test_cell_scalar_hand_computation():
    """One unit, every weight set by hand, against numbers worked out on paper."""
    cell = PeepholeLSTMCell(1, 1)
    with torch.no_grad():
        cell.weight_ih.copy_(torch.tensor([[1.0], [2.0], [3.0], [4.0]]))  # i, f, g, o
        cell.weight_hh.copy_(torch.tensor([[0.5], [0.5], [0.5], [0.5]]))
        cell.bias.zero_()
        cell.peep_i.fill_(0.1)
        cell.peep_f.fill_(0.2)
        cell.peep_o.fill_(0.3)
    x, h, c = torch.tensor([[1.0]]), torch.tensor([[0.0]]), torch.tensor([[1.0]])
    s = torch.sigmoid
    i = s(torch.tensor(1.0 + 0.1))
    f = s(torch.tensor(2.0 + 0.2))
    c1 = f * 1.0 + i * torch.tanh(torch.tensor(3.0))
    o = s(4.0 + 0.3 * c1)
    h1, c1_got = cell(x, (h, c))
    assert abs(c1_got.item() - c1.item()) < 1e-6
    assert abs(h1.item() - (o * torch.tanh(c1)).item()) < 1e-6


def test_zero_peepholes_equal_torch_lstm():
    torch.manual_seed(1)
    E, H, B, T = 6, 5, 4, 7
    ours = PeepholeLSTM(E, H)
    ref = torch.nn.LSTM(E, H, batch_first=True)
    with torch.no_grad():
        for p in (ours.cell.peep_i, ours.cell.peep_f, ours.cell.peep_o):
            p.zero_()
        ref.weight_ih_l0.copy_(ours.cell.weight_ih)
        ref.weight_hh_l0.copy_(ours.cell.weight_hh)
        ref.bias_ih_l0.copy_(ours.cell.bias)
        ref.bias_hh_l0.zero_()
    x = torch.randn(B, T, E)
    h, c, seq = ours(x, torch.full((B,), T), return_sequence=True)
    ref_seq, (ref_h, ref_c) = ref(x)
    assert (h - ref_h[0]).abs().max() <= 1e-5
    assert (c - ref_c[0]).abs().max() <= 1e-5
    assert (seq - ref_seq).abs().max() <= 1e-5


def test_padding_never_changes_the_state():
    torch.manual_seed(2)
    lstm = PeepholeLSTM(3, 4)
    x = torch.randn(1, 5, 3)
    alone, _, _ = lstm(x, torch.tensor([5]))
    padded = torch.cat([x, torch.randn(1, 4, 3) * 100], dim=1)  # garbage after the last word
    batch = torch.cat([padded, torch.randn(1, 9, 3)])
    h, _, _ = lstm(batch, torch.tensor([5, 9]))
    torch.testing.assert_close(h[0], alone[0], atol=1e-6, rtol=0)


def test_gradients_flow_through_peepholes():
    lstm = PeepholeLSTM(3, 4)
    h, _, _ = lstm(torch.randn(2, 3, 3), torch.tensor([3, 2]))
    h.sum().backward()
    for p in (lstm.cell.peep_i, lstm.cell.peep_f, lstm.cell.peep_o):
        assert p.grad is not None and p.grad.abs().sum() > 0
