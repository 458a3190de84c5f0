"""PyTorch references of gm_jax's char GPT and the seed's DCGAN-64, layer for layer, for speed ratios.

Each reference has the same layers and parameter count as the gm_jax model it times against (the
benchmarks check the counts at startup and raise if they differ) and a `step()` that runs the same
update the gm_jax trainer compiles: forward, backward, gradient clipping and the optimizer. Only the
benchmarks import this module; torch is the optional `bench` extra.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile

from gm_jax.models.attention import rotary_tables
from gm_jax.models.transformer import TransformerConfig


def set_threads() -> int:
  """Gives PyTorch as many threads as XLA:CPU uses (one per core it may run on); returns the count."""
  n = len(os.sched_getaffinity(0))
  torch.set_num_threads(n)
  return n


def num_params(module: nn.Module) -> int:
  return sum(p.numel() for p in module.parameters())


class _Attention(nn.Module):
  def __init__(self, c: TransformerConfig):
    super().__init__()
    d = c.embed_dim
    self.c = c
    self.qkv = nn.Linear(d, 3 * d, bias=c.use_bias)
    self.proj = nn.Linear(d, d, bias=c.use_bias)
    if c.positions == "rotary":
      cos, signed_sin = rotary_tables(c.context, d // c.num_heads)
      self.register_buffer("cos", torch.from_numpy(cos)[None, :, None, :], persistent=False)
      self.register_buffer("signed_sin", torch.from_numpy(signed_sin)[None, :, None, :], persistent=False)

  def _rotary(self, x: torch.Tensor) -> torch.Tensor:
    t, half = x.shape[1], x.shape[-1] // 2
    swapped = torch.cat([x[..., half:], x[..., :half]], dim=-1)
    return x * self.cos[:, :t] + swapped * self.signed_sin[:, :t]

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    b, t, d = x.shape
    h = self.c.num_heads
    q, k, v = self.qkv(x).view(b, t, 3, h, d // h).unbind(2)
    if self.c.positions == "rotary":
      q, k = self._rotary(q), self._rotary(k)
    # nanoGPT's attention: PyTorch's fused causal kernel on (B, H, T, D).
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                         is_causal=True)
    return self.proj(out.transpose(1, 2).reshape(b, t, d))


class _Block(nn.Module):
  def __init__(self, c: TransformerConfig):
    super().__init__()
    d = c.embed_dim
    self.ln1 = nn.LayerNorm(d, eps=1e-5, bias=c.use_bias)
    self.attn = _Attention(c)
    self.ln2 = nn.LayerNorm(d, eps=1e-5, bias=c.use_bias)
    self.fc = nn.Linear(d, c.mlp_ratio * d, bias=c.use_bias)
    self.out = nn.Linear(c.mlp_ratio * d, d, bias=c.use_bias)
    self.gelu = "none" if c.exact_gelu else "tanh"

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = x + self.attn(self.ln1(x))
    return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate=self.gelu))


class TorchGPT(nn.Module):
  """gm_jax.models.transformer.TransformerLM (dropout 0, tied embeddings) in PyTorch."""

  def __init__(self, c: TransformerConfig):
    super().__init__()
    if not c.tie_embeddings or c.dropout:
      raise ValueError("the reference GPT has tied embeddings and no dropout")
    self.embed = nn.Embedding(c.vocab_size, c.embed_dim)
    self.pos_embed = nn.Parameter(torch.zeros(c.context, c.embed_dim)) if c.positions == "learned" else None
    self.blocks = nn.ModuleList([_Block(c) for _ in range(c.num_layers)])
    self.ln_f = nn.LayerNorm(c.embed_dim, eps=1e-5, bias=c.use_bias)
    for p in self.parameters():
      if p.ndim >= 2:
        nn.init.normal_(p, std=0.02)

  def forward(self, tokens: torch.Tensor) -> torch.Tensor:
    x = self.embed(tokens)
    if self.pos_embed is not None:
      x = x + self.pos_embed[: tokens.shape[1]]
    for block in self.blocks:
      x = block(x)
    return self.ln_f(x) @ self.embed.weight.T

  @torch.no_grad()
  def decode(self, prompt: torch.Tensor, steps: int) -> torch.Tensor:
    """Samples `steps` tokens after the prompt's last one (temperature 1) with a key/value cache."""
    b = prompt.shape[0]
    cache: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(self.blocks)
    token, out = prompt[:, -1:], []
    for pos in range(steps):
      x = self.embed(token)
      if self.pos_embed is not None:
        x = x + self.pos_embed[pos : pos + 1]
      for i, block in enumerate(self.blocks):
        attn = block.attn
        hn = block.ln1(x)
        d = hn.shape[-1]
        h = attn.c.num_heads
        q, k, v = attn.qkv(hn).view(b, 1, 3, h, d // h).unbind(2)
        if attn.c.positions == "rotary":
          cos, sin = attn.cos[:, pos : pos + 1], attn.signed_sin[:, pos : pos + 1]
          half = q.shape[-1] // 2
          q = q * cos + torch.cat([q[..., half:], q[..., :half]], -1) * sin
          k = k * cos + torch.cat([k[..., half:], k[..., :half]], -1) * sin
        k, v = k.transpose(1, 2), v.transpose(1, 2)
        if cache[i] is not None:
          k, v = torch.cat([cache[i][0], k], 2), torch.cat([cache[i][1], v], 2)
        cache[i] = (k, v)
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k, v)
        x = x + attn.proj(a.transpose(1, 2).reshape(b, 1, d))
        x = x + block.out(F.gelu(block.fc(block.ln2(x)), approximate=block.gelu))
      logits = self.ln_f(x)[:, -1] @ self.embed.weight.T
      token = torch.multinomial(torch.softmax(logits, -1), 1)
      out.append(token)
    return torch.cat(out, 1)


def gpt_step(model: TorchGPT, optim, ema_decay: float = 0.0) -> Callable[[torch.Tensor], float]:
  """step(x (B, T+1) int64): one update by gm_jax's optimizer block `optim` as the trainer applies it:
  AdamW with its betas, eps and weight decay (on matrices only, or on every parameter), global-norm
  clipping, a constant learning rate (the benchmark's steps are too few for a schedule to matter).
  Settings it cannot mirror are refused rather than timed against a different step."""
  if optim.name != "adamw" or ema_decay or optim.weight_clip:
    raise ValueError(f"the reference step is AdamW without a parameter average or weight clipping; got "
                     f"optim.name={optim.name!r}, train.ema_decay={ema_decay}, optim.weight_clip="
                     f"{optim.weight_clip}")
  decay = [p for p in model.parameters() if p.ndim >= 2 or not optim.decay_matrices_only]
  no_decay = [p for p in model.parameters() if p.ndim < 2 and optim.decay_matrices_only]
  opt = torch.optim.AdamW([{"params": decay, "weight_decay": optim.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}], lr=optim.learning_rate,
                          betas=(optim.b1, optim.b2), eps=optim.eps)
  clip = optim.grad_clip_norm

  def step(x: torch.Tensor) -> float:
    logits = model(x[:, :-1])
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
    loss.backward()
    if clip:
      torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    # Freed at once, as nanoGPT's loop does: the next forward pass holds no gradients, which is also
    # what step_peak_bytes measures (dropped only before the backward pass, they lived through it).
    opt.zero_grad(set_to_none=True)
    return loss

  step.optimizer = opt
  return step


def _dcgan_init(module: nn.Module) -> None:
  """The seed's weights_init: N(0, 0.02) weights, BatchNorm scales N(1, 0.02)."""
  for m in module.modules():
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
      nn.init.normal_(m.weight, 0.0, 0.02)
      if m.bias is not None:
        nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
      nn.init.normal_(m.weight, 1.0, 0.02)
      nn.init.zeros_(m.bias)


class TorchDCGANGenerator(nn.Module):
  """gm_jax.models.dcgan.DCGANGenerator (64x64, base 4) in PyTorch, NCHW."""

  def __init__(self, latent_dim: int = 100, features: int = 64, channels: int = 3, n: int = 4, base: int = 4):
    super().__init__()
    width = features * 2 ** (n - 1)
    self.width, self.base = width, base
    self.fc = nn.Linear(latent_dim, width * base * base, bias=False)
    self.bn = nn.BatchNorm1d(width * base * base)
    layers: list[nn.Module] = []
    for _ in range(n - 1):
      layers += [nn.ConvTranspose2d(width, width // 2, 5, 2, 2, output_padding=1, bias=False),
                 nn.BatchNorm2d(width // 2), nn.ReLU()]
      width //= 2
    layers += [nn.ConvTranspose2d(width, channels, 5, 2, 2, output_padding=1, bias=False), nn.Tanh()]
    self.convs = nn.Sequential(*layers)
    _dcgan_init(self)

  def forward(self, z: torch.Tensor) -> torch.Tensor:
    h = F.relu(self.bn(self.fc(z))).view(z.shape[0], self.width, self.base, self.base)
    return self.convs(h)


class TorchDCGANDiscriminator(nn.Module):
  """gm_jax.models.dcgan.DCGANDiscriminator (BatchNorm, 64x64) in PyTorch, NCHW; one logit per image."""

  def __init__(self, features: int = 64, channels: int = 3, n: int = 4, base: int = 4):
    super().__init__()
    layers: list[nn.Module] = [nn.Conv2d(channels, features, 4, 2, 1), nn.LeakyReLU(0.2)]
    width = features
    for _ in range(n - 1):
      layers += [nn.Conv2d(width, 2 * width, 4, 2, 1), nn.BatchNorm2d(2 * width), nn.LeakyReLU(0.2)]
      width *= 2
    layers.append(nn.Conv2d(width, 1, base, 1, 0))
    self.net = nn.Sequential(*layers)
    _dcgan_init(self)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.net(x).view(x.shape[0])


def dcgan_step(g: TorchDCGANGenerator, d: TorchDCGANDiscriminator, latent_dim: int,
               lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999)) -> Callable[[torch.Tensor], None]:
  """step(real (B, 3, H, W) in [-1, 1]): one discriminator then one generator update (non-saturating
  loss, Adam), as gm_jax's gan task: G runs in training mode in both updates, D sees the real and fake
  batches in two calls, and the G update computes no gradients of D's weights."""
  opt_g = torch.optim.Adam(g.parameters(), lr=lr, betas=betas)
  opt_d = torch.optim.Adam(d.parameters(), lr=lr, betas=betas)

  def step(real: torch.Tensor) -> None:
    b = real.shape[0]
    with torch.no_grad():
      fake = g(torch.randn(b, latent_dim))
    d_loss = (F.softplus(-d(real)) + F.softplus(d(fake))).mean()
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    d.requires_grad_(False)
    g_loss = F.softplus(-d(g(torch.randn(b, latent_dim)))).mean()
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    d.requires_grad_(True)

  return step


def step_peak_bytes(step: Callable[[], object], model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
  """PyTorch's peak tensor memory in one train step: what it holds between steps (parameters and the
  optimizer's state; no gradients, which the step frees after its update) plus the highest total of the
  step's own allocations, as PyTorch's profiler records them."""
  for p in model.parameters():
    p.grad = None
  held = list(model.parameters())
  held += [t for state in optimizer.state.values() for t in state.values() if torch.is_tensor(t)]
  with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
    step()
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "trace.json")
    prof.export_chrome_trace(path)
    with open(path) as f:
      events = json.load(f)["traceEvents"]
  allocated = [e["args"]["Total Allocated"] for e in events if e.get("name") == "[memory]"]
  return sum(t.numel() * t.element_size() for t in held) + max(allocated, default=0)


def seed(n: int = 0) -> None:
  torch.manual_seed(n)
  np.random.seed(n)

