"""The train_step exercise: its planted bugs fail, naming the fault (its solution and starter: test_exercises.py)."""

from __future__ import annotations

from tests.course.helpers import (
    fails_only_the_milestone,
    numpy_session,
    plant,
    planted_bugs_fail,
    solution,
)

NAME = "train_step"
UPDATE = "    param = param * (1.0 - lr * weight_decay) - lr * m_hat / (xp.sqrt(v_hat) + eps)\n"
CLIP_IF = "    if not math.isfinite(total_norm) or total_norm <= max_norm:\n"
DECAY = "        decay = settings.weight_decay if p.ndim >= 2 else 0.0\n"

# (what the student got wrong, text in the solution, the wrong version, words the failure must contain)
BUGS = [
    (
        "weight decay forgotten",
        UPDATE,
        "    param = param - lr * m_hat / (xp.sqrt(v_hat) + eps)\n",
        "even a zero gradient shrinks the weights",
    ),
    (
        "L2 weight decay, gradient form",
        "    beta1, beta2 = betas\n",
        "    beta1, beta2 = betas\n    grad = grad + weight_decay * param\n    weight_decay = 0.0\n",
        "that is L2",
    ),
    (
        "no bias correction",
        "    m_hat = m / (1.0 - beta1**step)\n    v_hat = v / (1.0 - beta2**step)\n",
        "    m_hat = m\n    v_hat = v\n",
        "divide by the bias corrections",
    ),
    (
        "bias correction of m only",
        "    v_hat = v / (1.0 - beta2**step)\n",
        "    v_hat = v\n",
        "correct v too",
    ),
    (
        "eps inside the sqrt",
        UPDATE,
        "    param = param * (1.0 - lr * weight_decay) - lr * m_hat / xp.sqrt(v_hat + eps)\n",
        "eps is added after the square root",
    ),
    ("betas swapped", "    beta1, beta2 = betas\n", "    beta2, beta1 = betas\n", "beta1 (0.9 by default)"),
    (
        "decay after the Adam step",
        UPDATE,
        "    param = (param - lr * m_hat / (xp.sqrt(v_hat) + eps)) * (1.0 - lr * weight_decay)\n",
        "decay the weight as it was before this step",
    ),
    ("hard-coded eps", UPDATE, UPDATE.replace("+ eps)", "+ 1e-8)"), "use the eps argument"),
    (
        "in-place update of param",
        UPDATE,
        "    param -= param * lr * weight_decay + lr * m_hat / (xp.sqrt(v_hat) + eps)\n",
        "changed its input param in place",
    ),
    (
        "in-place update of m",
        "    m = beta1 * m + (1.0 - beta1) * grad\n",
        "    m *= beta1\n    m += (1.0 - beta1) * grad\n",
        "changed its input m in place",
    ),
    (
        "m and v not used (fresh every call)",
        "    beta1, beta2 = betas\n",
        "    beta1, beta2 = betas\n    m, v = xp.zeros_like(param), xp.zeros_like(param)\n",
        "start from the m and v you are given",
    ),
    (
        "step counted from 0 in adamw_update",
        "    m_hat = m / (1.0 - beta1**step)\n    v_hat = v / (1.0 - beta2**step)\n",
        "    m_hat = m / (1.0 - beta1 ** (step - 1))\n    v_hat = v / (1.0 - beta2 ** (step - 1))\n",
        "the step count starts at 1",
    ),
    (
        "step counter from 0 in train_step",
        '    state["step"] += 1\n',
        '    state["step"] += 0\n',
        "the step count starts at 1",
    ),
    (
        "clipping per tensor",
        "    total_norm = math.sqrt(sum(float(xp.sum(g * g)) for g in grads))\n"
        + CLIP_IF
        + "        return list(grads), total_norm\n    scale = max_norm / (total_norm + 1e-6)\n"
        "    return [g * scale for g in grads], total_norm\n",
        "    total_norm = math.sqrt(sum(float(xp.sum(g * g)) for g in grads))\n"
        "    out = []\n    for g in grads:\n        n = math.sqrt(float(xp.sum(g * g)))\n"
        "        out.append(g * (max_norm / (n + 1e-6)) if n > max_norm else g)\n    return out, total_norm\n",
        "clip globally",
    ),
    (
        "clipping always, even below max_norm",
        CLIP_IF,
        "    if not math.isfinite(total_norm):\n",
        "clip only when total_norm > max_norm",
    ),
    ("norm without the square root", "math.sqrt(sum(", "(sum(", "square root of the sum of squares"),
    (
        "an inf norm zeroes every gradient",
        CLIP_IF,
        "    if total_norm <= max_norm:\n",
        "when total_norm is inf or nan",
    ),
    (
        "the norm after clipping returned",
        "    return [g * scale for g in grads], total_norm\n",
        "    return [g * scale for g in grads], max_norm\n",
        "return the norm before clipping",
    ),
    (
        "weight decay on every parameter",
        DECAY,
        "        decay = settings.weight_decay\n",
        "weight decay only for matrices",
    ),
    (
        "no clipping in train_step",
        "clip_grad_norm([p.grad_data",
        "(lambda g, c: (g, 0))([p.grad_data",
        "clip the gradients",
    ),
    ("gradients never cleared", "    model.zero_grad()\n", "", "clear the gradients first"),
    (
        "m and v not carried between steps",
        '    if "m" not in state:\n        state["step"] = 0\n',
        '    state.setdefault("step", 0)\n    if True:  # fresh m and v on every call\n',
        "keep every parameter's m and v in state",
    ),
    (
        "the loss after the update returned",
        "    return float(loss.item())\n",
        "    return float(LanguageModelLoss()(model(batch), batch).item())\n",
        "computed before the update",
    ),
    (
        "the loss returned as a Tensor",
        "    return float(loss.item())\n",
        "    return loss\n",
        "return float(loss.item())",
    ),
]


test_a_planted_bug_fails_naming_the_fault = planted_bugs_fail(NAME, BUGS)


@numpy_session
def test_a_hard_coded_learning_rate_fails_only_the_milestone(tmp_path):
    # The tiny-model check happens to use lr 1e-2; the milestone trains with 3e-3.
    source = plant(solution(NAME), "            settings.lr,\n", "            1e-2,\n")
    fails_only_the_milestone(NAME, source, tmp_path)
