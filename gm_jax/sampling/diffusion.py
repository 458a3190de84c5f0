"""Diffusion samplers. Each takes a Denoiser (any prediction kind, any process) and returns
(samples, nfe): the number of network evaluations it used.

- ddpm_ancestral: the T-step DDPM chain, reverse variance beta_i ('large') or beta_tilde_i ('small').
- ddim: Song et al.'s DDIM on a subsequence of times, eta = 0 deterministic, eta = 1 ancestral-like.
- euler_maruyama: the reverse-time SDE dx = [f x - g^2 score] dt + g dW.
- predictor_corrector: Euler-Maruyama predictor with Langevin corrector steps (Song et al. 2021).
- probability_flow_ode: dx/dt = alpha' x0_hat + sigma' eps_hat (= f x - g^2 score / 2) through diffrax
  (Euler, Heun fixed-step; Tsit5 or Dopri5 adaptive); the flow-matching sampler.
- dpm_solver_pp_2m: DPM-Solver++(2M) (Lu et al. 2022), second-order multistep in log-SNR, for few steps.
- edm_heun: Karras et al.'s (2022) Heun sampler on rho-warped noise levels, deterministic or with "churn".

The SDE, ODE and DPM-Solver samplers, where they stop at an end time t_end > 0 (a continuous process's
t_min, a chain's first step 1/T, DPM-Solver's end), finish with the x0 prediction there
(`denoised_at_end`, one more network evaluation), as score_sde's samplers remove the noise of
sigma(t_end) at the end. Where t_end = 0 they return x there: the data on flow matching's paths (sigma(0)
= 0), but x with sigma(0)'s noise on Karras's levels (sigma_min, 2e-3) and VDM's schedules (about 1e-3).
The x0 prediction would not be closer to the data's law: for data of variance v it has variance
v^2 / (v + sigma^2), about v - sigma^2, where x has v + sigma^2. DDIM's last step lands on its grid's end
and returns x there: the data for a chain (sigma = 0 at step 0); for a continuous process x at t_min,
which keeps sigma(t_min)'s noise (about 1e-3 for VP and VDM, 2e-3 for Karras's levels, 0.01 for VE).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gm_jax.diffusion.denoiser import Denoiser
from gm_jax.diffusion.processes import DiscreteDDPM, Process, expand, rho_warp
from gm_jax.objectives.diffusion import posterior_coefficients, reverse_variance


def prior_sample(process: Process, key, shape) -> jax.Array:
  return process.prior_std * jax.random.normal(key, shape)


def _batch_times(t, shape):
  return jnp.full(shape[:1], t, jnp.float32)


def denoised_at_end(denoiser: Denoiser, x, t_end: float, nfe):
  """(E[x_0 | x_t_end], nfe + 1) for t_end > 0, where x still carries noise of std sigma(t_end) (on a DDPM
  chain's first step sqrt(beta_1), 1.3 grey levels of 8-bit images; 3.7 times the width of the toy ring's
  modes on a 20-step chain); (x, nfe) at t_end = 0, where it carries sigma(0)'s noise, none or at most
  2e-3 for the processes here (the module docstring)."""
  if t_end == 0:
    return x, nfe
  return denoiser.x0_and_eps(x, _batch_times(t_end, x.shape))[0], nfe + 1


def ddpm_ancestral(denoiser: Denoiser, key, shape, variance: str = "large", clip_x0: bool = False):
  """x_{i-1} = mean(x_i, x0_hat) + sqrt(var_i) z for i = T..1 (no noise at the last step)."""
  chain = denoiser.process
  if not isinstance(chain, DiscreteDDPM):
    raise ValueError("ancestral sampling needs a discrete DDPM process (ddpm_linear or ddpm_cosine)")
  init_key, loop_key = jax.random.split(key)
  x = prior_sample(chain, init_key, shape)

  def body(x, i):
    steps = jnp.full(shape[:1], i)
    x0_hat, _ = denoiser.x0_and_eps(x, steps / chain.num_steps)
    if clip_x0:
      x0_hat = jnp.clip(x0_hat, -1.0, 1.0)
    c0, ci, _ = (expand(v, x) for v in posterior_coefficients(chain, steps))
    std = expand(jnp.sqrt(reverse_variance(chain, steps, variance)), x)
    noise = jax.random.normal(jax.random.fold_in(loop_key, i), shape)
    return c0 * x0_hat + ci * x + jnp.where(i > 1, std, 0.0) * noise, None

  x, _ = jax.lax.scan(body, x, jnp.arange(chain.num_steps, 0, -1))
  return x, chain.num_steps


def time_grid(process: Process, num_steps: int) -> jax.Array:
  """num_steps + 1 decreasing times from 1 to the end time: 0 for a discrete chain (integer steps,
  sigma(0) = 0), t_min for a continuous process."""
  if isinstance(process, DiscreteDDPM):
    if num_steps > process.num_steps:  # rounded to the chain's steps, times would repeat (0/0 = NaN)
      raise ValueError(f"{num_steps} steps exceed the {process.num_steps} of the DDPM chain")
    return jnp.round(jnp.linspace(process.num_steps, 0, num_steps + 1)) / process.num_steps
  return jnp.linspace(1.0, process.t_min, num_steps + 1)


def ddim(denoiser: Denoiser, key, shape, num_steps: int, eta: float = 0.0, clip_x0: bool = False):
  """x_s = alpha_s x0_hat + sqrt(sigma_s^2 - c^2) eps_hat + c z, c^2 = eta^2 sigma_s^2 (1 - SNR_t/SNR_s)."""
  process = denoiser.process
  init_key, loop_key = jax.random.split(key)
  times = time_grid(process, num_steps)

  def body(x, j):
    t, s = times[j], times[j + 1]
    x0_hat, eps_hat = denoiser.x0_and_eps(x, _batch_times(t, shape))
    if clip_x0:
      x0_hat = jnp.clip(x0_hat, -1.0, 1.0)
      eps_hat = (x - process.alpha(t) * x0_hat) / process.sigma(t)
    sigma2_s = process.sigma2(s)
    # eta^2 times the posterior variance of q(x_s | x_t, x_0), also at s = 0, where only a discrete chain has
    # sigma = 0 (log-SNR +inf, so c = 0); a log-SNR schedule such as VDM's keeps sigma(0) > 0.
    c2 = eta**2 * sigma2_s * -jnp.expm1(process.log_snr(t) - process.log_snr(s))
    noise = jax.random.normal(jax.random.fold_in(loop_key, j), shape)
    x = process.alpha(s) * x0_hat + jnp.sqrt(jnp.maximum(sigma2_s - c2, 0.0)) * eps_hat + jnp.sqrt(c2) * noise
    return x, None

  x, _ = jax.lax.scan(body, prior_sample(process, init_key, shape), jnp.arange(num_steps))
  return x, num_steps


def require_finite_log_snr_at_one(process: Process, sampler: str) -> None:
  if process.ends_in_pure_noise:
    raise ValueError(f"the {sampler} sampler needs a finite log-SNR at t = 1, which a path ending in pure "
                     f"noise (alpha(1) = 0) lacks; use the ode or ddim sampler")


def _reverse_sde_step(denoiser: Denoiser, x, t, dt, noise, add_noise):
  """One Euler-Maruyama step of the reverse SDE from t to t - dt."""
  process = denoiser.process
  tb = _batch_times(t, x.shape)
  drift = process.drift_coefficient(t) * x - process.diffusion2(t) * denoiser.score(x, tb)
  g = jnp.sqrt(process.diffusion2(t))
  return x - drift * dt + jnp.where(add_noise, g * jnp.sqrt(dt), 0.0) * noise


def euler_maruyama(denoiser: Denoiser, key, shape, num_steps: int):
  """Euler-Maruyama on the reverse SDE from t = 1 to t_min (no noise at the last step)."""
  return predictor_corrector(denoiser, key, shape, num_steps, corrector_steps=0)


def langevin_step(denoiser: Denoiser, x, t, key, snr: float, alpha=1.0):
  """x + e score + sqrt(2e) z with e = 2 alpha (snr ||z|| / ||score||)^2 (Song et al. 2021, Algorithm 5:
  alpha = alpha_i = 1 - beta_i of the VP chain's step, 1 for VE), the norms averaged over the batch as
  Song et al. do (per-example norms of low-dimensional data make e explode near the mode)."""
  score = denoiser.score(x, _batch_times(t, x.shape))
  noise = jax.random.normal(key, x.shape)
  mean_norm = lambda a: jnp.mean(jnp.sqrt(jnp.sum(a.reshape(a.shape[0], -1) ** 2, axis=-1)))
  step = 2.0 * alpha * (snr * mean_norm(noise) / jnp.maximum(mean_norm(score), 1e-12)) ** 2
  return x + step * score + jnp.sqrt(2.0 * step) * noise


def predictor_corrector(denoiser: Denoiser, key, shape, num_steps: int, snr: float = 0.16,
                        corrector_steps: int = 1):
  """At each time: `corrector_steps` Langevin steps, then one Euler-Maruyama predictor step."""
  process = denoiser.process
  require_finite_log_snr_at_one(process, "euler_maruyama or predictor-corrector")
  init_key, loop_key = jax.random.split(key)
  times = jnp.linspace(1.0, process.t_min, num_steps + 1)

  def body(x, j):
    step_key = jax.random.fold_in(loop_key, j)
    # alpha_i = alpha(t_i)^2 / alpha(t_{i+1})^2: the signal the forward process keeps over this step
    # (1 - beta_i for VP and sub-VP, 1 for VE).
    alpha = jnp.exp(2.0 * (process.log_alpha(times[j]) - process.log_alpha(times[j + 1])))
    for c in range(corrector_steps):
      x = langevin_step(denoiser, x, times[j], jax.random.fold_in(step_key, c + 1), snr, alpha)
    noise = jax.random.normal(step_key, shape)
    return _reverse_sde_step(denoiser, x, times[j], times[j] - times[j + 1], noise, j < num_steps - 1), None

  x, _ = jax.lax.scan(body, prior_sample(process, init_key, shape), jnp.arange(num_steps))
  return denoised_at_end(denoiser, x, process.t_min, num_steps * (1 + corrector_steps))


# diffrax's solver class, network evaluations per step, and once at the start for solvers that reuse their
# last stage (FSAL). diffrax's adaptive controller picks the first step without evaluating the network
# (0.01 for the direction-wrapped terms it is handed), so there is nothing more to count.
ODE_SOLVERS = {"euler": ("Euler", 1, 0), "heun": ("Heun", 2, 0), "tsit5": ("Tsit5", 6, 1),
               "dopri5": ("Dopri5", 6, 1)}


def check_ode_solver(solver: str, num_steps: int, steps_name: str = "num_steps") -> None:
  if solver not in ODE_SOLVERS:
    raise ValueError(f"unknown ODE solver {solver!r}; choose one of {sorted(ODE_SOLVERS)}")
  if not num_steps and solver in ("euler", "heun"):
    raise ValueError(f"the {solver} solver runs with fixed steps; set {steps_name} > 0 or use tsit5/dopri5")


def probability_flow_velocity(denoiser: Denoiser, x, t):
  """dx/dt at a scalar time t. Written as alpha' x0_hat + sigma' eps_hat rather than f x - g^2 score / 2 (the
  same field): it stays finite where a flow's path reaches pure noise (alpha = 0, f and g^2 infinite)."""
  return denoiser.velocity(x, _batch_times(t, x.shape))


def solve_ode(velocity, y0, t0: float, t1: float, solver: str, num_steps: int, rtol: float, atol: float,
              args=None):
  """Integrates dy/dt = velocity(t, y, args) with diffrax for a batch: every leaf of y0 and of args leads
  with the example axis. Fixed steps (num_steps > 0) step the batch together; adaptive steps are each
  example's own (the solve is vmapped over examples), so an example's result does not depend on the batch
  it is in: one error norm over the whole batch (diffrax's default for a batched state) let a likelihood
  move with the eval batch size and device count, by 1e-3 relative at rtol 1e-5. Returns (y(t1), the
  velocity evaluations of the example that took the most); y(t1) is NaN where an example's solve failed."""
  # Imported here, not with the module: diffrax (with equinox) added about 0.45 s to the start-up of every
  # process, while only the runs that solve an ODE use it.
  import diffrax

  check_ode_solver(solver, num_steps)
  solver_name, evals_per_step, initial_evals = ODE_SOLVERS[solver]
  solver_cls = getattr(diffrax, solver_name)

  def solve(y, a, controller, dt0):
    # throw=False: a failed solve (max_steps reached) gives NaN instead of raising through a host callback,
    # which would keep every program holding a solve out of XLA's persistent compilation cache.
    sol = diffrax.diffeqsolve(diffrax.ODETerm(velocity), solver_cls(), t0, t1, dt0, y, args=a,
                              stepsize_controller=controller, max_steps=100_000,
                              adjoint=diffrax.RecursiveCheckpointAdjoint(), throw=False)
    solved = sol.result == diffrax.RESULTS.successful
    y1 = jax.tree.map(lambda v: jnp.where(solved, v[-1], jnp.nan), sol.ys)
    return y1, sol.stats["num_steps"] * evals_per_step + initial_evals

  if num_steps:  # the grid's times themselves: t0 + k dt rounds past t1 in float32 and adds a tiny step
    return solve(y0, args, diffrax.StepTo(ts=jnp.linspace(t0, t1, num_steps + 1)), None)

  def solve_one(y, a):  # one example, given back its batch axis of 1 for the velocity
    with_axis = lambda tree: jax.tree.map(lambda v: v[None], tree)
    y1, nfe = solve(with_axis(y), with_axis(a), diffrax.PIDController(rtol=rtol, atol=atol), None)
    return jax.tree.map(lambda v: v[0], y1), nfe

  y1, nfe = jax.vmap(solve_one)(y0, args)
  return y1, jnp.max(nfe)


def probability_flow_ode(denoiser: Denoiser, key, shape, solver: str = "tsit5", num_steps: int = 0,
                         rtol: float = 1e-5, atol: float = 1e-5):
  return probability_flow_from(denoiser, prior_sample(denoiser.process, key, shape), solver, num_steps,
                               rtol, atol)


def probability_flow_from(denoiser: Denoiser, x1, solver: str = "tsit5", num_steps: int = 0,
                          rtol: float = 1e-5, atol: float = 1e-5):
  """The probability-flow ODE from the given x1 at t = 1 down to t_min, then denoised there:
  (samples, NFE)."""
  velocity = lambda t, x, labels: probability_flow_velocity(denoiser.with_labels(labels), x, t)
  t_min = denoiser.process.t_min
  x, nfe = solve_ode(velocity, x1, 1.0, t_min, solver, num_steps, rtol, atol, args=denoiser.labels)
  return denoised_at_end(denoiser, x, t_min, nfe)


def dpm_solver_pp_2m(denoiser: Denoiser, key, shape, num_steps: int):
  """DPM-Solver++(2M) on times uniform in log-SNR from t = 1 to t_min, one evaluation per step:
  x_i = (sigma_i / sigma_{i-1}) x_{i-1} - alpha_i (e^{-h_i} - 1) D_i with h = half-log-SNR steps and
  D_i the x0 prediction, extrapolated from the previous one after the first step."""
  process = denoiser.process
  require_finite_log_snr_at_one(process, "dpm_solver")
  start = jnp.float32(1.0)
  t_end = process.t_min if process.t_min > 0 else 1e-5  # log-SNR is infinite at sigma = 0
  end = jnp.float32(t_end)
  log_snrs = jnp.linspace(process.log_snr(start), process.log_snr(end), num_steps + 1)
  times = process.time_at_log_snr(log_snrs).at[0].set(start).at[-1].set(end)
  half = 0.5 * log_snrs  # DPM-Solver's lambda = log(alpha / sigma)

  def body(carry, j):
    x, prev_x0 = carry
    t, s = times[j], times[j + 1]
    x0_hat, _ = denoiser.x0_and_eps(x, _batch_times(t, shape))
    h = half[j + 1] - half[j]
    h_prev = half[j] - half[jnp.maximum(j - 1, 0)]
    r = jnp.where(j == 0, 1.0, h_prev / h)  # unused at the first step
    d = jnp.where(j == 0, x0_hat, (1 + 0.5 / r) * x0_hat - (0.5 / r) * prev_x0)
    x = process.sigma(s) / process.sigma(t) * x - process.alpha(s) * jnp.expm1(-h) * d
    return (x, x0_hat), None

  x1 = prior_sample(process, key, shape)
  (x, _), _ = jax.lax.scan(body, (x1, jnp.zeros(shape)), jnp.arange(num_steps))
  return denoised_at_end(denoiser, x, t_end, num_steps)


def karras_noise_levels(high: float, low: float, num_steps: int, rho: float = 7.0) -> jax.Array:
  """EDM's num_steps noise levels from `high` down to `low`, equally spaced in s^(1/rho), then 0."""
  u = jnp.arange(num_steps, dtype=jnp.float32) / max(num_steps - 1, 1)
  return jnp.concatenate([rho_warp(high, low, u, rho), jnp.zeros(1)])


def edm_heun(denoiser: Denoiser, key, shape, num_steps: int, churn: float = 0.0, s_tmin: float = 0.0,
             s_tmax: float = float("inf"), s_noise: float = 1.0, rho: float = 7.0):
  """Karras et al. (2022), Algorithm 2 (Algorithm 1 when churn = 0): Heun's method on
  dx/ds = (x - D(x; s)) / s for the scaled variable x = x_t / alpha(t) at noise level s = sigma / alpha,
  over num_steps rho-warped levels
  from the process's s(1) to s(t_min) and a last Euler step to s = 0 (so 2 num_steps - 1 evaluations). With
  churn > 0, each step whose level lies in [s_tmin, s_tmax] first raises it by gamma = min(churn / num_steps,
  sqrt(2) - 1) with fresh noise of scale s_noise; on a process whose time ends at 1 (all but Karras's)
  never above s(1)."""
  process = denoiser.process
  require_finite_log_snr_at_one(process, "edm_heun")
  init_key, loop_key = jax.random.split(key)
  noise_level = lambda t: process.sigma(t) / process.alpha(t)
  levels = karras_noise_levels(noise_level(jnp.float32(1.0)), noise_level(jnp.float32(process.t_min)),
                               num_steps, rho)
  gamma_max = min(churn / num_steps, 2**0.5 - 1)

  def slope(x, s):
    """(x - D(x; s)) / s, with D read from the denoiser at the time whose noise level is s."""
    t = process.time_at_log_snr(-2.0 * jnp.log(s))
    x0_hat = denoiser.predict(process.alpha(t) * x, _batch_times(t, shape), "x0")
    return (x - x0_hat) / s

  def churned(x, i):
    s = levels[i]
    # Above s(1) a process whose time ends at 1 has no time at which to read the denoiser (it read it at
    # t = 1, the wrong level for the churned input); Karras's levels extend past it in closed form.
    # At the first level levels[0] / s - 1 is 0 up to rounding, which can be -7e-8: clamped at 0 (a
    # negative gamma would make the noise's scale NaN).
    most = gamma_max if process.time_extends_past_one else jnp.clip(levels[0] / s - 1.0, 0.0, gamma_max)
    gamma = jnp.where((s >= s_tmin) & (s <= s_tmax), most, 0.0)
    s_hat = s * (1.0 + gamma)
    noise = jax.random.normal(jax.random.fold_in(loop_key, i), shape)
    # sqrt(s_hat^2 - s^2) written so that gamma = 0 gives exactly 0 (a fused s_hat^2 - s^2 can be -1e-8: NaN).
    return x + s * jnp.sqrt(gamma * (2.0 + gamma)) * s_noise * noise, s_hat

  def heun_step(x, i):
    x_hat, s_hat = churned(x, i)
    d = slope(x_hat, s_hat)
    x_next = x_hat + (levels[i + 1] - s_hat) * d
    return x_hat + (levels[i + 1] - s_hat) * 0.5 * (d + slope(x_next, levels[i + 1])), None

  x = prior_sample(process, init_key, shape) / process.alpha(jnp.float32(1.0))
  x, _ = jax.lax.scan(heun_step, x, jnp.arange(num_steps - 1))
  x_hat, s_hat = churned(x, num_steps - 1)  # the last step, to s = 0, is Euler: x = D(x_hat; s_hat)
  return x_hat - s_hat * slope(x_hat, s_hat), 2 * num_steps - 1
