"""XLA:CPU compiler options for gm_jax's programs: the trainer's step, evaluation and samplers, and the
feature networks of the sample-quality metrics.

XLA:CPU's default instruction scheduler lets independent operations run at the same time, which
competes with the threads each operation (a matmul, a convolution) uses on its own, and keeps more
buffers alive at once. Its memory-optimized scheduler orders them to free buffers early. Measured on
the char GPT step (benchmarks.lm_step's model, one-process A/B): 44.6 MB instead of 48.2, as fast on
one thread and about 20 % faster on two; the DCGAN-64 step is unchanged on one and two threads.

Convolutions run on XLA:CPU's own kernels rather than YNNPACK's (matmuls and reductions stay on
YNNPACK, as by default): on the AMD CPUs measured (docs/BASELINES.md, "Speed"), YNNPACK's convolutions
were slower and gained little from a second thread, and on an Intel Xeon with AMX they were slower too
(the DCGAN-64 step 2.04 against 1.82 s in float32, 2.09 against 1.87 s in bfloat16). One-process A/Bs of
the trainer's step on a 2-core AMD EPYC with AVX2: the DCGAN-64 step 22 % faster on one thread and 28 %
on two, digits_ddpm 14 % and digits_pixelcnn 32 % on one; programs without convolutions (the char GPT)
compile as before. The samplers gain too (one-process A/Bs, one thread: digits_pixelcnn's 64 samples
3.90 -> 3.18 s, digits_ddpm's ancestral sampler 43.3 -> 41.8 s), and the FID Inception network most (16
images, 4.91 -> 3.16 s), so evaluation, sampling and the feature networks compile with the same options.
"""

from __future__ import annotations

import jax

MEMORY_OPTIMIZED_SCHEDULER = {"xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"}
# The operations XLA:CPU may hand to YNNPACK: its default set (matmuls, convolutions, reductions)
# without the convolutions.
NO_YNNPACK_CONVOLUTIONS = {"xla_cpu_experimental_ynn_fusion_type":
                           "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"}


def compiler_options() -> dict[str, str] | None:
  """The memory-optimized scheduler and XLA's own convolutions on the CPU backend; None (XLA's
  defaults) on the others."""
  if jax.default_backend() != "cpu":
    return None
  return {**MEMORY_OPTIMIZED_SCHEDULER, **NO_YNNPACK_CONVOLUTIONS}


def jit(fun, **kwargs):
  """jax.jit with these compiler options (read when called, so a test may change them)."""
  return jax.jit(fun, compiler_options=compiler_options(), **kwargs)
