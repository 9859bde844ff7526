"""Fused GPU kernels: CUDA C source text, each next to its equation and to a
numpy reference of the same maths.

Nothing here touches a device. `backend.CupyBackend` compiles these sources
(cupy.RawModule, once per dtype) and calls them; tests/test_kernels.py compiles
them with NVRTC on any machine and checks each reference against fastbp's
unfused numpy code; tests/test_gpu.py checks each kernel against its reference
on a device.

Why fuse: on the GPU a training step is bound by launches and by passes over
memory, not by arithmetic. Each kernel below replaces several whole-array
ufuncs (each a launch and a read and write of the array) by one.

Every source is written over `real`, which `source(dtype)` defines as float
or double. Sizes are `long long` and loops are grid-stride, so any launch
size covers any array.
"""

from __future__ import annotations

import numpy as np

from .backend import SPLITMIX
from .nn import activations

# Options for NVRTC, here and in the backend alike.
OPTIONS = ("-std=c++17",)

THREADS = 256  # per block, for the elementwise kernels
ROWS_PER_BLOCK = 4  # the softmax kernel gives each row one warp of 32 threads

_PRELUDE = r"""
#define GRID_STRIDE(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (long long)blockDim.x * gridDim.x)
"""


def source(body, dtype):
    """The full translation unit: `real` set to the dtype's C type."""
    ctype = {"float32": "float", "float64": "double"}[np.dtype(dtype).name]
    return f"typedef {ctype} real;\n{_PRELUDE}\n{body}"


# -- activations: σ(z) and σ'(z), from the records in nn/activations.py ---------
def codes():
    """{activation name: its C `act` code} for every record with CUDA source.
    The code is a switch that is uniform across a launch: no divergence."""
    kernel = [n for n, cls in activations.RECORDS.items() if cls.cuda_sigma and cls.cuda_prime]
    return {n: i for i, n in enumerate(kernel)}


def activation_source():
    """σ(z) and σ'(z) as two switches over the records' C expressions.

    σ' takes the arrays, not the values, so that z is read only by the records
    that declare `prime_reads_z` (leaky_relu): a pass over memory fewer for the
    rest; a record whose expression reads z without declaring it fails to compile."""
    sig, prime = [], []
    for name, code in codes().items():
        cls = activations.RECORDS[name]
        sig.append(f"    case {code}: return {cls.cuda_sigma};  // {name}")
        z = "const real z = z_[i]; " if cls.prime_reads_z else ""
        prime.append(f"    case {code}: {{ {z}const real a = a_[i]; return {cls.cuda_prime}; }}  // {name}")
    nl = "\n"
    return f"""
__device__ __forceinline__ real sigma(int act, real z, real slope) {{
    switch (act) {{
{nl.join(sig)}
    default: return z;
    }}
}}

__device__ __forceinline__ real sigma_prime(int act, const real* z_, const real* a_, long long i, real slope) {{
    switch (act) {{
{nl.join(prime)}
    default: return (real)1;
    }}
}}
"""


def sigma_reference(act, z, slope):
    return activations.RECORDS[act](slope).sigma(z).astype(z.dtype)


def sigma_prime_reference(act, z, a, slope):
    return activations.RECORDS[act](slope).prime(z, a).astype(a.dtype)


# -- forward: z = a Wᵀ + b, a = σ(z), after the GEMM -----------------------------
BIAS_ACTIVATION = r"""
// After z = a^{l−1} (W^l)ᵀ (cuBLAS): z ← z + b (b broadcast over the rows),
// a = σ(z). One pass that writes both z (BP2 and the cost read it) and a.
// The column is a 32-bit remainder (a 64-bit one is a long subroutine): the
// backend launches this only for n < 2^31.
extern "C" __global__ void bias_activation(real* z, const real* b, real* a, int act, real slope,
                                           unsigned int cols, long long n) {
    GRID_STRIDE(i, n) {
        real zi = z[i] + b[(unsigned int)i % cols];
        z[i] = zi;
        a[i] = sigma(act, zi, slope);
    }
}
"""


def bias_activation_reference(z, b, act, slope=0.01):
    """(z + b, σ(z + b)): what bias_activation leaves in z and a."""
    z = z + b
    return z, sigma_reference(act, z, slope)


# -- forward, softmax output: one warp per row ----------------------------------
BIAS_SOFTMAX = r"""
// z ← z + b, then per row a_j = e^{z_j − m} / s with m = max_j z_j and
// s = Σ_j e^{z_j − m} (no overflow), and log_norm = m + ln s = ln Σ_j e^{z_j},
// which the log-likelihood cost reads (activations.Softmax keeps the same).
// One warp per row; the row's max and sum go across the warp by shuffles.
extern "C" __global__ void bias_softmax(real* z, const real* b, real* a, real* log_norm,
                                        long long rows, long long cols) {
    long long row = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (row >= rows) return;  // whole warps leave together: the shuffles below stay full
    real* zr = z + row * cols;
    real* ar = a + row * cols;
    real m = -(real)__longlong_as_double(0x7ff0000000000000LL);  // −∞: NVRTC has no INFINITY
    for (long long j = lane; j < cols; j += 32) {
        real v = zr[j] + b[j];
        zr[j] = v;
        m = fmax(m, v);
    }
    for (int off = 16; off > 0; off /= 2) m = fmax(m, __shfl_xor_sync(0xffffffffu, m, off));
    real s = 0;
    for (long long j = lane; j < cols; j += 32) {
        real e = exp(zr[j] - m);
        ar[j] = e;
        s += e;
    }
    for (int off = 16; off > 0; off /= 2) s += __shfl_xor_sync(0xffffffffu, s, off);
    for (long long j = lane; j < cols; j += 32) ar[j] /= s;
    if (lane == 0) log_norm[row] = m + log(s);
}
"""


def bias_softmax_reference(z, b):
    """(z + b, softmax(z + b) per row, ln Σ_j e^{z_j + b_j} per row as (n, 1))."""
    z = z + b
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    s = e.sum(axis=1, keepdims=True)
    return z, e / s, m + np.log(s)


# -- BP1: δ^L = ∇_a C ⊙ σ'(z^L), over the batch mean ----------------------------
OUTPUT_DELTA = r"""
// δ^L = (a − y) ⊙ σ'(z^L) · scale, scale = 1/n (C is the batch mean).
// Where σ' cancels with the cost (a record's delta_kernel "a - y", costs.py),
// the caller passes the identity's code, σ' = 1.
extern "C" __global__ void output_delta(const real* z, const real* a, const real* y, real* delta,
                                        int act, real slope, real scale, long long n) {
    GRID_STRIDE(i, n) {
        delta[i] = (a[i] - y[i]) * sigma_prime(act, z, a, i, slope) * scale;
    }
}
"""


def output_delta_reference(z, a, y, act, scale, slope=0.01):
    return (a - y) * sigma_prime_reference(act, z, a, slope) * scale


# -- BP2: δ^l = (δ^{l+1} W^{l+1}) ⊙ σ'(z^l), after the GEMM ------------------------
ACTIVATION_GRAD = r"""
// delta holds δ^{l+1} W^{l+1} (cuBLAS); multiply by σ'(z^l) in place.
extern "C" __global__ void activation_grad(real* delta, const real* z, const real* a, int act,
                                           real slope, long long n) {
    GRID_STRIDE(i, n) {
        delta[i] *= sigma_prime(act, z, a, i, slope);
    }
}
"""


def activation_grad_reference(delta, z, a, act, slope=0.01):
    return delta * sigma_prime_reference(act, z, a, slope)


# -- the optimiser: one pass over the flat parameter buffer ---------------------
OPTIMIZER = r"""
// g' = g + λ' w on the weights, params[:n_weights]; biases are not decayed
// (optim.py). g itself is left as it is: it is scratch for the next backward.
__device__ __forceinline__ real decayed(const real* p, const real* g, long long i,
                                        long long n_weights, real weight_decay) {
    return i < n_weights ? g[i] + weight_decay * p[i] : g[i];
}

// SGD: p ← p − η g'
extern "C" __global__ void sgd_step(real* p, const real* g, long long n_weights, long long n,
                                    real weight_decay, real lr) {
    GRID_STRIDE(i, n) { p[i] -= lr * decayed(p, g, i, n_weights, weight_decay); }
}

// Momentum: v ← μ v − η g';  p ← p + v
extern "C" __global__ void momentum_step(real* p, const real* g, long long n_weights, long long n,
                                         real weight_decay, real lr, real* v, real mu) {
    GRID_STRIDE(i, n) {
        real vi = mu * v[i] - lr * decayed(p, g, i, n_weights, weight_decay);
        v[i] = vi;
        p[i] += vi;
    }
}

// Nesterov: v ← μ v − η g';  p ← p + μ v − η g'
extern "C" __global__ void nesterov_step(real* p, const real* g, long long n_weights, long long n,
                                         real weight_decay, real lr, real* v, real mu) {
    GRID_STRIDE(i, n) {
        real step = lr * decayed(p, g, i, n_weights, weight_decay);
        real vi = mu * v[i] - step;
        v[i] = vi;
        p[i] += mu * vi - step;
    }
}

// Adam: m ← β1 m + (1−β1) g';  v ← β2 v + (1−β2) g'²;
// p ← p − η/(1−β1^t) · m / (√v · 1/√(1−β2^t) + ε)   (= η m̂ / (√v̂ + ε));
// the host passes lr_t = η/(1−β1^t) and inv_sqrt_bc2 = 1/√(1−β2^t).
extern "C" __global__ void adam_step(real* p, const real* g, long long n_weights, long long n,
                                     real weight_decay, real lr_t, real* m, real* v, real beta1,
                                     real beta2, real eps, real inv_sqrt_bc2) {
    GRID_STRIDE(i, n) {
        real gi = decayed(p, g, i, n_weights, weight_decay);
        real mi = beta1 * m[i] + ((real)1 - beta1) * gi;
        real vi = beta2 * v[i] + ((real)1 - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] -= lr_t * mi / (sqrt(vi) * inv_sqrt_bc2 + eps);
    }
}
"""

# Which kernel does each optimiser's update (by optim.py's names), and the
# arguments that follow (p, g, n_weights, n, weight_decay) in its signature.
OPTIMIZER_KERNELS = {"sgd": "sgd_step", "momentum": "momentum_step", "nesterov": "nesterov_step", "adam": "adam_step",
                     "adam_sklearn": "adam_step"}  # scikit-learn's Adam: its own lr_t, and inv_sqrt_bc2 = 1


def optimizer_reference(name, p, g, n_weights, weight_decay, *args):
    """The kernel's update in numpy, on copies: returns (p, *state) after one
    step. args are as the kernel takes them after weight_decay."""
    p, g = p.copy(), g.copy()
    g[:n_weights] = g[:n_weights] + weight_decay * p[:n_weights]
    if name == "sgd":
        (lr,) = args
        return (p - lr * g,)
    if name in ("momentum", "nesterov"):
        lr, v, mu = args
        v = mu * v - lr * g
        return (p + v if name == "momentum" else p + mu * v - lr * g), v
    if name in ("adam", "adam_sklearn"):
        lr_t, m, v, b1, b2, eps, inv_sqrt_bc2 = args
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        return p - lr_t * m / (np.sqrt(v) * inv_sqrt_bc2 + eps), m, v
    raise ValueError(f"no fused kernel for optimizer {name!r}")


# -- dropout's draws: SplitMix64 addressed by position (backend.uniform) -----------
def uniform_source():
    """backend.uniform as one kernel, SplitMix64's constants from backend.SPLITMIX.
    Its reference is backend.Backend.uniform's array code."""
    gamma, (s1, m1), (s2, m2), s3 = SPLITMIX
    return f"""
// out (rows × w, C order): row r from the outputs start + r·m + 1, + 2, ... (m = ⌈w/2⌉) of
// SplitMix64's stream key, output i's state key + i·γ (mod 2⁶⁴); each output gives two draws,
// the top 24 bits of its high and low halves, over 2²⁴: exact in float and double.
extern "C" __global__ void uniform(real* out, unsigned long long key, unsigned long long start,
                                   long long rows, long long w) {{
    const long long m = (w + 1) / 2;
    GRID_STRIDE(i, rows * m) {{
        unsigned long long x = key + (start + (unsigned long long)i + 1ULL) * {gamma}ULL;
        x ^= x >> {s1};
        x *= {m1}ULL;
        x ^= x >> {s2};
        x *= {m2}ULL;
        x ^= x >> {s3};
        const long long r = i / m, j = 2 * (i - r * m);
        real* row = out + r * w;
        row[j] = (real)(x >> 40) * (real)5.9604644775390625e-08;
        if (j + 1 < w) row[j + 1] = (real)((x >> 8) & 0xFFFFFFULL) * (real)5.9604644775390625e-08;
    }}
}}
"""


def sources():
    """{source name: (C body, the kernels it defines)}: every kernel, the
    activation switches generated from the records as they are now."""
    act = activation_source()
    return {
        "bias_activation": (act + BIAS_ACTIVATION, ("bias_activation",)),
        "bias_softmax": (BIAS_SOFTMAX, ("bias_softmax",)),
        "output_delta": (act + OUTPUT_DELTA, ("output_delta",)),
        "activation_grad": (act + ACTIVATION_GRAD, ("activation_grad",)),
        "optimizer": (OPTIMIZER, tuple(dict.fromkeys(OPTIMIZER_KERNELS.values()))),
        "uniform": (uniform_source(), ("uniform",)),
    }
