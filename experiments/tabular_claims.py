"""The lecture's claims on finite MDPs, exactly, as plots in experiments/results/.

Command: python experiments/tabular_claims.py   (CPU, about a minute)
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from vecpg import tabular as tb  # noqa: E402
from vecpg.bench.runner import machine  # noqa: E402

OUT = Path(__file__).parent / "results"


def world(seed, S=6, A=3, gamma=0.9, scale=1.0):
    k = jax.random.split(jax.random.key(seed), 3)
    mdp = tb.random_mdp(k[0], S, A, gamma)
    return mdp, scale * jax.random.normal(k[1], (S, A)), jax.random.normal(k[2], (S, A))


def claim1_identity(ax):
    lhs, rhs = [], []
    for seed in range(100):
        mdp, theta, d = world(seed, scale=1.0)
        new = theta + 2.0 * d
        pi, pi_new = tb.policy(theta), tb.policy(new)
        lhs.append(float(tb.objective(mdp, pi_new) - tb.objective(mdp, pi)))
        d_new = tb.discounted_visitation(mdp, pi_new)
        adv = tb.advantages(mdp, pi)
        rhs.append(float(jnp.sum(d_new[:, None] * pi_new * adv) / (1 - mdp.gamma)))
    lhs, rhs = np.asarray(lhs), np.asarray(rhs)
    ax.plot(lhs, rhs, ".", alpha=0.7)
    lim = [lhs.min(), lhs.max()]
    ax.plot(lim, lim, "k--", lw=1)
    ax.set_xlabel("J(theta') - J(theta)")
    ax.set_ylabel("E_{p_theta'}[sum_t gamma^t A^theta]")
    ax.set_title(f"Claim 1: identity, max error {np.abs(lhs - rhs).max():.1e}")
    return float(np.abs(lhs - rhs).max())


def claim4_kl_model(ax):
    orders = []
    for seed in range(10):
        mdp, theta, d = world(seed)
        F = tb.fisher(mdp, theta)
        dist = tb.discounted_visitation(mdp, tb.policy(theta))
        hs = np.geomspace(1.0, 0.01, 12)
        errs = []
        for h in hs:
            delta = h * d
            kl = dist @ tb.policy_kl(tb.policy(theta + delta), tb.policy(theta))
            errs.append(float(abs(kl - 0.5 * delta.ravel() @ F @ delta.ravel())))
        norms = hs * float(jnp.linalg.norm(d))
        ax.loglog(norms, errs, color="C0", alpha=0.5)
        orders.append(np.polyfit(np.log(norms[-6:]), np.log(errs[-6:]), 1)[0])
    ax.set_xlabel("|delta theta|")
    ax.set_ylabel("|KL - 1/2 dtheta^T F dtheta|")
    ax.set_title(f"Claim 4: error order {np.median(orders):.2f} (cubic = 3)")
    return float(np.median(orders))


def claim2_marginals(ax):
    t = np.arange(1, 31)
    for seed in range(40):
        mdp, theta, d = world(seed, S=5)
        new = theta + 0.1 * (seed % 5 + 1) * d
        pi, pi_new = tb.policy(theta), tb.policy(new)
        eps = float(tb.policy_tv(pi_new, pi).max())
        diff = tb.state_marginals(mdp, pi_new, 30) - tb.state_marginals(mdp, pi, 30)
        l1 = np.abs(np.asarray(diff)).sum(1)[1:]
        ax.semilogy(t, l1 / (2 * eps * t), color="C0", alpha=0.3, lw=1)
    ax.axhline(1.0, color="k", ls="--", label="bound: ratio = 1")
    ax.set_xlabel("t")
    ax.set_ylabel("||p'(s_t) - p(s_t)||_1 / (2 eps t)")
    ax.set_title("Claim 2: state-marginal bound holds (40 pairs)")
    ax.legend()


def claim3_surrogate(ax):
    errs, bounds, epss = [], [], []
    for seed in range(30):
        mdp, theta, d = world(seed)
        for h in np.geomspace(1.6, 0.0125, 8):
            new = theta + h * d
            pi, pi_new = tb.policy(theta), tb.policy(new)
            eps = tb.policy_tv(pi_new, pi).max()
            err = abs(
                tb.objective(mdp, pi_new) - tb.objective(mdp, pi) - tb.surrogate(mdp, theta, new)
            )
            errs.append(float(err))
            epss.append(float(eps))
            bounds.append(float(tb.surrogate_error_bound(mdp, theta, eps)))
    epss, errs, bounds = map(np.asarray, (epss, errs, bounds))
    small = epss < np.quantile(epss, 0.3)
    order = np.polyfit(np.log(epss[small]), np.log(errs[small]), 1)[0]
    ax.loglog(epss, bounds, ".", color="C3", alpha=0.4, label="lecture bound")
    ax.loglog(epss, errs, ".", color="C0", alpha=0.6, label=f"|J'-J-A_bar| (order {order:.2f})")
    ax.set_xlabel("eps = max_s TV(pi', pi)")
    ax.set_title("Claim 3: surrogate error vs its bound")
    ax.legend(fontsize=8)
    return order


def claim5_convergence(ax):
    mdp = tb.gridworld(5, gamma=0.9)
    j_star = float(mdp.p0 @ tb.optimal_values(mdp))
    lrs = (1.0, 10.0, 100.0)
    thetas = {"vanilla PG (lr 1)": jnp.zeros((25, 4))}
    thetas.update({f"natural PG (lr {lr:g})": jnp.zeros((25, 4)) for lr in lrs})
    curves = {name: [] for name in [*thetas, "policy iteration"]}
    pi_pi = tb.policy(jnp.zeros((25, 4)))
    for _ in range(30):
        for name, theta in thetas.items():
            curves[name].append(j_star - float(tb.objective(mdp, tb.policy(theta))))
        curves["policy iteration"].append(j_star - float(tb.objective(mdp, pi_pi)))
        for name, theta in thetas.items():
            if name.startswith("vanilla"):
                thetas[name] = theta + tb.policy_gradient(mdp, theta)
            else:
                lr = float(name.split("lr ")[1].rstrip(")"))
                nat = tb.advantages(mdp, tb.policy(theta)) / (1 - mdp.gamma)
                thetas[name] = theta + lr * nat
        pi_pi = jax.nn.one_hot(jnp.argmax(tb.q_values(mdp, pi_pi), 1), 4)
    for name, c in curves.items():
        ax.semilogy(np.maximum(c, 1e-12), label=name)
    ax.set_xlabel("iteration")
    ax.set_ylabel("J* - J")
    ax.set_title("Claim 5: NPG with growing steps -> policy iteration")
    ax.legend(fontsize=8)


def claim6_natural_vs_vanilla(ax):
    gains = []
    for seed in range(200):
        mdp, theta, _ = world(seed, scale=1.5)
        F, g = tb.fisher(mdp, theta), tb.policy_gradient(mdp, theta)
        j0 = tb.objective(mdp, tb.policy(theta))
        row = []
        for direction in (g, tb.advantages(mdp, tb.policy(theta))):
            step = tb.kl_normalised_step(direction, F, 1e-3)
            row.append(float(tb.objective(mdp, tb.policy(theta + step)) - j0))
        gains.append(row)
    gains = np.asarray(gains)
    win = float(np.mean(gains[:, 1] > gains[:, 0]))
    lim = [gains.min(), gains.max()]
    ax.plot(gains[:, 0], gains[:, 1], ".", alpha=0.6)
    ax.plot(lim, lim, "k--", lw=1)
    ax.set_xlabel("J gain, vanilla step")
    ax.set_ylabel("J gain, natural step")
    ax.set_title(f"Claim 6: same KL budget; natural wins {win:.0%}")
    return win


def main():
    t0 = time.perf_counter()
    with jax.enable_x64(True):
        fig, axes = plt.subplots(3, 2, figsize=(11, 13), dpi=80)
        max_err = claim1_identity(axes[0, 0])
        claim2_marginals(axes[0, 1])
        order = claim3_surrogate(axes[1, 0])
        kl_order = claim4_kl_model(axes[1, 1])
        claim5_convergence(axes[2, 0])
        win = claim6_natural_vs_vanilla(axes[2, 1])
        fig.tight_layout()
        OUT.mkdir(parents=True, exist_ok=True)
        fig.savefig(OUT / "tabular_claims.png")
    minutes = (time.perf_counter() - t0) / 60
    (OUT / "tabular_claims.md").write_text(
        "# The lecture's claims on finite MDPs (exact, float64)\n\n"
        f"Command: `python experiments/tabular_claims.py`. Machine: {machine()}. "
        f"Runtime: {minutes:.1f} min.\n\n"
        f"- Claim 1: performance-difference identity, max |error| over 100 random pairs: "
        f"{max_err:.1e}.\n"
        f"- Claim 4: empirical order of the KL second-order model's error: {kl_order:.2f}.\n"
        f"- Claim 3: empirical order of the surrogate error in eps (smallest 30% of eps): "
        f"{order:.2f}.\n"
        f"- Claim 6: natural step beats the vanilla step under the same KL budget (1e-3) in "
        f"{win:.0%} of 200 random worlds.\n\n![claims](tabular_claims.png)\n"
    )
    print(f"order {order:.2f}, natural wins {win:.0%}, {minutes:.1f} min")


if __name__ == "__main__":
    main()
