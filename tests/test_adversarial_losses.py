"""Adversarial-stage losses: hand-computed cross-entropies with missing labels and class weights,
the minimum-entropy term (sign, value, gradient direction), the independence loss against
torch.distributions, class-weight formulas, accuracy counts and code usage."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal

from textgan.corpora.corpus import MISSING_LABEL
from textgan.losses import (
    AttrLoss,
    attribute_accuracy,
    attribute_loss,
    class_weights,
    class_weights_from_labels,
    code_usage,
    independence_loss,
    label_counts,
    prediction_entropy,
)

LOG2, LOG3 = math.log(2.0), math.log(3.0)
M = MISSING_LABEL


def test_missing_label_constant_matches_the_corpus():
    # losses.py keeps its own copy to avoid importing `datasets`; the two must not drift.
    from textgan import losses

    assert losses._MISSING_LABEL == MISSING_LABEL == -1


# --------------------------------------------------------------------------- attribute_loss


def three_heads():
    """4 sentences, 3 attributes (K = 2, 3, 2).

    Attribute 0: rows 0-2 known. Row 0 logits [log 3, 0] label 0 -> p = 3/4, CE = log(4/3);
    row 1 logits [0, 0] -> CE = log 2; row 2 logits [log 3, 0] label 1 -> p = 1/4, CE = log 4.
    Row 3 is missing and has wild logits that must not count. Mean = (log 4/3 + log 2 + log 4)/3.
    Attribute 1: only row 1 known, all-zero logits over 3 classes -> CE = log 3.
    Attribute 2: no known label at all -> 0, counted 0, no gradient.
    """
    a0 = torch.tensor([[LOG3, 0.0], [0.0, 0.0], [LOG3, 0.0], [40.0, -25.0]], dtype=torch.float64)
    a1 = torch.zeros(4, 3, dtype=torch.float64)
    a1[0] = torch.tensor([9.0, -9.0, 3.0], dtype=torch.float64)
    a2 = torch.randn(4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([[0, M, M],
                           [1, 2, M],
                           [1, M, M],
                           [M, M, M]])
    return [a0, a1, a2], labels


def test_attribute_loss_hand_values_with_missing_labels():
    logits, labels = three_heads()
    out = attribute_loss(logits, labels, labels != M)
    assert isinstance(out, AttrLoss)
    expected0 = (math.log(4 / 3) + LOG2 + math.log(4.0)) / 3
    torch.testing.assert_close(out.per_attribute,
                               torch.tensor([expected0, LOG3, 0.0], dtype=torch.float64))
    assert out.counted.tolist() == [3, 1, 0]
    torch.testing.assert_close(out.total, torch.tensor(expected0 + LOG3, dtype=torch.float64))
    # Without a mask, -1 is what marks a missing label: same result.
    torch.testing.assert_close(attribute_loss(logits, labels).per_attribute, out.per_attribute)


def test_attribute_with_no_known_label_gives_zero_and_no_gradient():
    logits, labels = three_heads()
    logits = [head.clone().requires_grad_(True) for head in logits]
    out = attribute_loss(logits, labels, labels != M)
    out.total.backward()
    assert torch.isfinite(out.total)
    assert out.per_attribute[2].item() == 0.0 and out.counted[2].item() == 0
    assert torch.equal(logits[2].grad, torch.zeros_like(logits[2]))
    assert torch.isfinite(logits[0].grad).all() and logits[0].grad.abs().sum() > 0


def test_all_labels_missing_is_zero_not_nan():
    logits = [torch.randn(3, 2, requires_grad=True)]
    labels = torch.full((3, 1), M)
    out = attribute_loss(logits, labels, torch.zeros(3, 1, dtype=torch.bool))
    out.total.backward()
    assert out.total.item() == 0.0 and out.counted.tolist() == [0]
    assert torch.equal(logits[0].grad, torch.zeros(3, 2))


def test_missing_rows_never_index_a_class():
    logits, labels = three_heads()
    mask = labels != M

    def loss_and_grads(heads):
        heads = [h.clone().requires_grad_(True) for h in heads]
        out = attribute_loss(heads, labels, mask)
        out.total.backward()
        return out, [h.grad for h in heads]

    base, grads = loss_and_grads(logits)
    # Change every logit of every missing entry (attribute 0 row 3, attribute 1 rows 0, 2, 3):
    # if -1 indexed a class (wrapping to the last one) or the row counted, the loss would move.
    changed = [h.clone() for h in logits]
    changed[0][3] = torch.tensor([-80.0, 80.0], dtype=torch.float64)
    changed[1][[0, 2, 3]] = torch.tensor([-50.0, 3.0, 70.0], dtype=torch.float64)
    moved, grads_changed = loss_and_grads(changed)
    torch.testing.assert_close(moved.per_attribute, base.per_attribute, rtol=0, atol=0)
    for g in (grads, grads_changed):
        assert torch.equal(g[0][3], torch.zeros(2, dtype=torch.float64))
        assert torch.equal(g[1][[0, 2, 3]], torch.zeros(3, 3, dtype=torch.float64))
        assert g[1][1].abs().sum() > 0


def test_non_finite_logits_of_a_missing_row_do_not_poison_the_loss():
    # e.g. fp16 logits that overflowed on an unlabelled sentence: its CE is NaN, and
    # NaN * 0 would still be NaN; the loss must not see the row at all.
    logits = [torch.tensor([[math.inf, 0.0], [0.0, 0.0]])]
    out = attribute_loss(logits, torch.tensor([[M], [1]]))
    torch.testing.assert_close(out.total, torch.tensor(LOG2))


def test_mask_false_hides_a_real_label():
    # The mask, when given, decides: a real label under a False mask does not count.
    logits = [torch.tensor([[LOG3, 0.0], [0.0, 0.0]])]
    labels = torch.tensor([[1], [0]])
    out = attribute_loss(logits, labels, torch.tensor([[False], [True]]))
    torch.testing.assert_close(out.total, torch.tensor(LOG2))
    assert out.counted.tolist() == [1]


def test_matches_torch_cross_entropy_with_ignore_index_and_weights():
    g = torch.Generator().manual_seed(1)
    logits = [torch.randn(9, 3, generator=g), torch.randn(9, 4, generator=g)]
    labels = torch.stack([torch.randint(3, (9,), generator=g),
                          torch.randint(4, (9,), generator=g)], dim=1)
    labels[[1, 4], 0] = M
    labels[[0, 2, 7], 1] = M
    weights = [torch.tensor([0.5, 2.0, 1.0]), torch.tensor([1.0, 3.0, 0.25, 1.5])]
    out = attribute_loss(logits, labels, labels != M, class_weights=weights)
    for a in range(2):
        expected = F.cross_entropy(logits[a], labels[:, a], weight=weights[a], ignore_index=M)
        torch.testing.assert_close(out.per_attribute[a], expected)
    # One attribute weighted, the other not.
    out = attribute_loss(logits, labels, labels != M, class_weights=[None, weights[1]])
    torch.testing.assert_close(out.per_attribute[0],
                               F.cross_entropy(logits[0], labels[:, 0], ignore_index=M))


def test_class_weights_change_the_loss_as_computed_by_hand():
    # Row 0 label 0 with CE log(4/3), row 1 label 1 with CE log 4 (see three_heads).
    logits = [torch.tensor([[LOG3, 0.0], [LOG3, 0.0]], dtype=torch.float64)]
    labels = torch.tensor([[0], [1]])
    plain = attribute_loss(logits, labels).total
    torch.testing.assert_close(plain, torch.tensor((math.log(4 / 3) + math.log(4.0)) / 2,
                                                   dtype=torch.float64))
    w = torch.tensor([1.0, 3.0], dtype=torch.float64)
    weighted = attribute_loss(logits, labels, class_weights=[w]).total
    # (1 * log(4/3) + 3 * log 4) / (1 + 3): the rare, badly predicted class weighs more.
    torch.testing.assert_close(weighted, torch.tensor((math.log(4 / 3) + 3 * math.log(4.0)) / 4,
                                                      dtype=torch.float64))
    assert weighted > plain


def test_attribute_loss_runs_in_fp32_for_half_logits():
    logits = [torch.randn(5, 3).to(torch.bfloat16)]
    labels = torch.tensor([[0], [1], [2], [0], [M]])
    out = attribute_loss(logits, labels)
    assert out.total.dtype == torch.float32
    torch.testing.assert_close(out.total, F.cross_entropy(logits[0].float(), labels[:, 0],
                                                          ignore_index=M))


def test_attribute_loss_rejects_bad_labels_and_shapes():
    logits = [torch.zeros(2, 2)]
    with pytest.raises(ValueError, match="label_mask False"):
        # mask says known but the label is -1: a bookkeeping bug, not a class
        attribute_loss(logits, torch.tensor([[0], [M]]), torch.tensor([[True], [True]]))
    with pytest.raises(ValueError, match="not a class"):
        attribute_loss(logits, torch.tensor([[0], [2]]))
    with pytest.raises(ValueError, match="heads"):
        attribute_loss(logits, torch.tensor([[0, 1], [1, 0]]))
    with pytest.raises(ValueError, match="integer"):
        attribute_loss(logits, torch.tensor([[0.0], [1.0]]))
    with pytest.raises(ValueError, match="class weights"):
        attribute_loss(logits, torch.tensor([[0], [1]]), class_weights=[torch.ones(3)])


def test_attribute_loss_with_no_attributes_is_zero():
    out = attribute_loss([], torch.zeros(4, 0, dtype=torch.long))
    assert out.total.item() == 0.0 and out.per_attribute.shape == (0,)
    assert out.counted.shape == (0,)


def test_entropy_hand_values():
    # Uniform over K classes: log K, whatever the common logit value.
    assert prediction_entropy([torch.full((3, 4), 2.5, dtype=torch.float64)]).item() == (
        pytest.approx(math.log(4.0), abs=1e-12))
    # Nearly one-hot: ~0.
    assert prediction_entropy([torch.tensor([[60.0, 0.0, 0.0]])]).item() == pytest.approx(
        0.0, abs=1e-20)
    # p = [0.2, 0.8]: logits [0, log 4].
    h = prediction_entropy([torch.tensor([[0.0, math.log(4.0)]], dtype=torch.float64)])
    expected = -(0.2 * math.log(0.2) + 0.8 * math.log(0.8))
    assert expected == pytest.approx(0.5004, abs=1e-4)
    assert h.item() == pytest.approx(expected, abs=1e-12)


def test_entropy_is_batch_mean_and_attribute_sum():
    uniform2 = torch.zeros(2, 2, dtype=torch.float64)              # log 2 per row
    mixed3 = torch.tensor([[0.0, 0.0, 0.0], [200.0, 0.0, 0.0]],    # log 3 and ~0
                          dtype=torch.float64)
    h = prediction_entropy([uniform2, mixed3])
    assert h.item() == pytest.approx(LOG2 + LOG3 / 2, abs=1e-12)
    assert prediction_entropy([]).item() == 0.0


def test_entropy_is_nonnegative_and_not_cross_entropy_to_uniform():
    g = torch.Generator().manual_seed(3)
    logits = [20 * torch.randn(64, 5, generator=g), torch.randn(64, 2, generator=g)]
    h = prediction_entropy(logits)
    assert 0.0 <= h.item() <= math.log(5.0) + LOG2
    # Cross-entropy to uniform is >= log K for every prediction; the entropy of confident
    # predictions is far below it, which is the whole point of the term.
    confident = [torch.tensor([[30.0, 0.0]])]
    ce_uniform = -(0.5 * F.log_softmax(confident[0], -1)).sum()
    assert prediction_entropy(confident).item() < 1e-6 < ce_uniform.item()
    # No NaN when probabilities underflow to exactly 0.
    extreme = prediction_entropy([torch.tensor([[1e4, -1e4, 0.0]])])
    assert torch.isfinite(extreme) and extreme.item() == 0.0


def test_entropy_gradient_descent_makes_predictions_confident():
    logits = torch.tensor([[0.3, 0.1, -0.2], [1.0, 0.5, 0.9]], dtype=torch.float64,
                          requires_grad=True)
    h = prediction_entropy([logits])
    h.backward()
    with torch.no_grad():
        stepped = logits - 0.5 * logits.grad
        after = prediction_entropy([stepped])
        assert after < h
        # ...by sharpening: the top probability of each row goes up.
        assert (torch.softmax(stepped, -1).max(-1).values
                > torch.softmax(logits, -1).max(-1).values).all()


def test_entropy_in_fp32_for_bf16_logits():
    h = prediction_entropy([torch.zeros(2, 8, dtype=torch.bfloat16)])
    assert h.dtype == torch.float32
    assert h.item() == pytest.approx(math.log(8.0), abs=1e-6)


# --------------------------------------------------------------------------- independence


def test_independence_loss_matches_torch_distributions():
    g = torch.Generator().manual_seed(4)
    mean = torch.randn(7, 5, generator=g, dtype=torch.float64)
    logvar = torch.randn(7, 5, generator=g, dtype=torch.float64)
    z = torch.randn(7, 5, generator=g, dtype=torch.float64)
    expected = Normal(mean, (0.5 * logvar).exp()).log_prob(z).sum(-1).neg().mean()
    torch.testing.assert_close(independence_loss(mean, logvar, z), expected)


def test_independence_loss_hand_case():
    # Sentence 0: z = mean, unit variance, 2 dims -> 0.5 * 2 * log 2 pi = log 2 pi.
    # Sentence 1: dim 0 (z - mean) = 2, logvar = log 4 -> 0.5 * (log 2 pi + log 4 + 4 / 4);
    #             dim 1 (z - mean) = 1, logvar = 0     -> 0.5 * (log 2 pi + 0 + 1).
    mean = torch.tensor([[0.5, -1.0], [1.0, 0.0]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, 0.0], [math.log(4.0), 0.0]], dtype=torch.float64)
    z = torch.tensor([[0.5, -1.0], [3.0, -1.0]], dtype=torch.float64)
    log2pi = math.log(2 * math.pi)
    row0 = log2pi
    row1 = 0.5 * (log2pi + math.log(4.0) + 1.0) + 0.5 * (log2pi + 1.0)
    assert independence_loss(mean, logvar, z).item() == pytest.approx((row0 + row1) / 2,
                                                                       abs=1e-12)


def test_independence_gradient_pulls_the_posterior_mean_toward_z():
    g = torch.Generator().manual_seed(5)
    z = torch.randn(4, 3, generator=g)
    mean = torch.randn(4, 3, generator=g, requires_grad=True)
    logvar = torch.full((4, 3), -0.5)
    loss = independence_loss(mean, logvar, z)
    loss.backward()
    # d/d mean = -(z - mean) / var / B: descent moves every coordinate toward z.
    torch.testing.assert_close(mean.grad, -(z - mean.detach()) / logvar.exp() / 4)
    with torch.no_grad():
        stepped = mean - 0.1 * mean.grad
    assert ((stepped - z).abs() < (mean.detach() - z).abs()).all()
    assert independence_loss(stepped, logvar, z) < loss


def test_independence_loss_variants_hand_case():
    # the hand case above: sentence 0 exact, sentence 1 off by (2, 1) with variances (4, 1)
    mean = torch.tensor([[0.5, -1.0], [1.0, 0.0]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, 0.0], [math.log(4.0), 0.0]], dtype=torch.float64)
    z = torch.tensor([[0.5, -1.0], [3.0, -1.0]], dtype=torch.float64)
    log2pi = math.log(2 * math.pi)
    nll = independence_loss(mean, logvar, z)
    assert independence_loss(mean, logvar, z, "nll_detached_var").item() == pytest.approx(
        nll.item(), abs=1e-12)
    # variance 1: 0.5 * sum_d (log 2 pi + err^2); errors (0, 0) and (2, 1)
    fixed = (log2pi + (log2pi + 0.5 * (4.0 + 1.0))) / 2
    assert independence_loss(mean, logvar, z, "nll_fixed_var").item() == pytest.approx(
        fixed, abs=1e-12)
    # a mean over dimensions: (0 + 0) / 2 and (4 + 1) / 2, then over sentences
    assert independence_loss(mean, logvar, z, "mse").item() == pytest.approx(1.25, abs=1e-12)
    with pytest.raises(ValueError, match="unknown independence loss 'l1'"):
        independence_loss(mean, logvar, z, "l1")


def test_only_the_full_nll_lets_the_reader_lower_the_loss_through_its_variance():
    mean = torch.tensor([[0.0, 1.0]], requires_grad=True)
    z = torch.tensor([[2.0, -1.0]])
    for kind, variance_gets_gradient in (("nll", True), ("nll_detached_var", False),
                                         ("nll_fixed_var", False), ("mse", False)):
        logvar = torch.zeros(1, 2, requires_grad=True)
        independence_loss(mean, logvar, z, kind).backward()
        assert (logvar.grad is not None and bool(logvar.grad.abs().sum() > 0)) \
            == variance_gets_gradient, kind
    # with the full NLL a wider posterior is cheaper for errors above 1 sigma: G's lever
    logvar = torch.zeros(1, 2, requires_grad=True)
    independence_loss(mean, logvar, z).backward()
    assert bool((logvar.grad < 0).all())


def test_independence_loss_kinds_match_the_config_choices():
    from textgan.config import INDEPENDENCE_LOSSES as CONFIG_CHOICES
    from textgan.losses import INDEPENDENCE_LOSSES

    assert CONFIG_CHOICES == INDEPENDENCE_LOSSES


def test_independence_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="must all be"):
        independence_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 4))


# --------------------------------------------------------------------------- class weights


def test_class_weights_exact_numbers_on_90_10():
    inverse = class_weights([90, 10], "inverse")
    # N / (K * n_k) = 100 / 180 and 100 / 20.
    torch.testing.assert_close(inverse, torch.tensor([100 / 180, 5.0]))
    assert inverse.dtype == torch.float32
    # Average weight per example is 1.
    assert (inverse * torch.tensor([90.0, 10.0])).sum().item() / 100 == pytest.approx(1.0)
    log = class_weights([90, 10], "log")
    torch.testing.assert_close(log, torch.tensor([1.0, 1.0 + math.log(9.0)]))
    assert log[1].item() == pytest.approx(3.1972, abs=1e-4)
    assert class_weights([90, 10], "none") is None
    # Balanced counts give all-ones under both kinds.
    torch.testing.assert_close(class_weights([7, 7, 7], "inverse"), torch.ones(3))
    torch.testing.assert_close(class_weights([7, 7, 7], "log"), torch.ones(3))


def test_class_weights_zero_count_and_bad_kind_are_errors():
    with pytest.raises(ValueError, match="class 1 has no labelled example"):
        class_weights([5, 0, 3], "inverse")
    with pytest.raises(ValueError, match="class 0 has no labelled example"):
        class_weights([0, 3], "log")
    assert class_weights([0, 3], "none") is None  # no weights, nothing undefined
    with pytest.raises(ValueError, match="kind"):
        class_weights([1, 1], "balanced")
    with pytest.raises(ValueError, match="negative"):
        class_weights([-1, 3], "inverse")


def test_class_weights_from_labels_ignores_missing_labels():
    labels = torch.tensor([[0, 1], [0, M], [0, 1], [1, 0], [M, 1], [0, M]])
    assert label_counts(labels, [2, 2]) == [[4, 1], [1, 3]]
    weights = class_weights_from_labels(labels, [2, 2], "inverse")
    torch.testing.assert_close(weights[0], torch.tensor([5 / 8, 5 / 2]))
    torch.testing.assert_close(weights[1], torch.tensor([4 / 2, 4 / 6]))
    from_counts = class_weights_from_labels([[4, 1], [1, 3]], [2, 2], "inverse")
    for got, want in zip(from_counts, weights):
        torch.testing.assert_close(got, want)
    assert class_weights_from_labels(labels, [2, 2], "none") == [None, None]


def test_class_weights_from_labels_errors_name_the_attribute():
    labels = torch.tensor([[0, 0], [1, 0], [M, M]])
    with pytest.raises(ValueError, match="attribute 1: class 1 has no labelled example"):
        class_weights_from_labels(labels, [2, 2], "log")
    with pytest.raises(ValueError, match="outside"):
        label_counts(torch.tensor([[2]]), [2])
    with pytest.raises(ValueError, match="3 classes but 2 counts"):
        class_weights_from_labels([[1, 2]], [3], "inverse")


# --------------------------------------------------------------------------- monitors


def test_attribute_accuracy_counts_with_masks():
    a0 = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 5.0]])   # argmax 0, 1, 0, 1
    a1 = torch.tensor([[0.0, 1.0, 0.0], [2.0, 0.0, 0.0],
                       [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])                  # argmax 1, 0, 2, 0
    labels = torch.tensor([[0, 1],
                           [0, M],
                           [M, 2],
                           [1, 1]])
    acc = attribute_accuracy([a0, a1], labels, labels != M)
    assert acc.correct.tolist() == [2, 2]      # a0: rows 0, 3 right, row 1 wrong; a1: rows 0, 2
    assert acc.counted.tolist() == [3, 3]
    # A real label hidden by the mask is not counted.
    mask = labels != M
    mask[3, 0] = False
    acc = attribute_accuracy([a0, a1], labels, mask)
    assert acc.correct.tolist() == [1, 2] and acc.counted.tolist() == [2, 3]


def test_code_usage_sums_to_one_both_ways():
    g = torch.Generator().manual_seed(6)
    logits = [torch.randn(10, 2, generator=g, requires_grad=True), torch.randn(10, 4, generator=g)]
    for hard in (False, True):
        usage = code_usage(logits, hard=hard)
        assert [u.shape for u in usage] == [(2,), (4,)]
        for u in usage:
            assert u.sum().item() == pytest.approx(1.0, abs=1e-6)
            assert (u >= 0).all() and not u.requires_grad
    hand = code_usage([torch.tensor([[5.0, 0.0, 0.0], [0.0, 5.0, 0.0],
                                     [9.0, 0.0, 0.0], [8.0, 0.0, 0.0]])], hard=True)
    torch.testing.assert_close(hand[0], torch.tensor([0.75, 0.25, 0.0]))
    soft = code_usage([torch.tensor([[0.0, math.log(4.0)], [0.0, 0.0]])])
    torch.testing.assert_close(soft[0], torch.tensor([(0.2 + 0.5) / 2, (0.8 + 0.5) / 2]))
