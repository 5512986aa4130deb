/* Sparse x dense products for sparserl's training path (see sparserl/native/__init__.py).
 *
 * Both kernels take a CSR matrix A (rows x cols: int32 row pointers `crow`, int32 column indices
 * `col`, float32 values `val`) and row-major float32 dense operands of `width` columns.
 *
 *   sparserl_csr_mm:  out[r, :] = bias[r] + sum_k val[k] * dense[col[k], :]    (out = A @ dense + b)
 *   sparserl_sddmm:   out[k]    = dot(left[r, :], right[col[k], :])             for each kept (r, col[k])
 *
 * The loops are written once, on the compiler's generic vectors of LANES floats: the widest the
 * build targets (16 with AVX-512, 8 with AVX2, 4 on plain x86-64 or other CPUs), so one source
 * compiles to each CPU's own instructions under -march=native. csr_mm keeps a column tile of
 * 8 vectors of the result in registers while the row's kept entries stream past, tile by tile, so
 * each tile of `dense` is reused from cache by every row; rows are split across OpenMP threads (the
 * caller's OpenMP runtime, i.e. PyTorch's). Each output element is accumulated in the order of the
 * row's kept entries whatever the vector width, so csr_mm gives the same bits on every build with
 * fused multiply-adds; dot's partial sums depend on the width (float rounding only).
 */
#include <stdint.h>
#include <string.h>

#if defined(__AVX512F__)
#define LANES 16
#elif defined(__AVX__)
#define LANES 8
#else
#define LANES 4
#endif
#define TILE (8 * LANES)

typedef float vec __attribute__((vector_size(LANES * sizeof(float))));

static inline vec load(const float *p) { vec v; memcpy(&v, p, sizeof v); return v; }
static inline void store(float *p, vec v) { memcpy(p, &v, sizeof v); }
static inline vec splat(float x) {
    vec v;
    for (int i = 0; i < LANES; ++i) v[i] = x;
    return v;
}

/* The vector width this build uses (the status line reports it; tests check it). */
int sparserl_lanes(void) { return LANES; }

static void row_tile(const int32_t *crow, const int32_t *col, const float *val, const float *dense,
                     float b, float *o, int64_t r, int64_t j0, int64_t width) {
    vec a0 = splat(b), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (int32_t k = crow[r]; k < crow[r + 1]; ++k) {
        const vec v = splat(val[k]);
        const float *x = dense + (int64_t)col[k] * width + j0;
        a0 += v * load(x);
        a1 += v * load(x + LANES);
        a2 += v * load(x + 2 * LANES);
        a3 += v * load(x + 3 * LANES);
        a4 += v * load(x + 4 * LANES);
        a5 += v * load(x + 5 * LANES);
        a6 += v * load(x + 6 * LANES);
        a7 += v * load(x + 7 * LANES);
    }
    float *y = o + j0;
    store(y, a0);             store(y + LANES, a1);
    store(y + 2 * LANES, a2); store(y + 3 * LANES, a3);
    store(y + 4 * LANES, a4); store(y + 5 * LANES, a5);
    store(y + 6 * LANES, a6); store(y + 7 * LANES, a7);
}

void sparserl_csr_mm(const int32_t *crow, const int32_t *col, const float *val, const float *dense,
                     const float *bias, float *out, int64_t rows, int64_t width) {
    const int64_t full = width / TILE * TILE;
#pragma omp parallel
    {
        for (int64_t j0 = 0; j0 < full; j0 += TILE) {
#pragma omp for schedule(static) nowait
            for (int64_t r = 0; r < rows; ++r)
                row_tile(crow, col, val, dense, bias ? bias[r] : 0.0f, out + r * width, r, j0, width);
        }
        if (full < width) {
#pragma omp for schedule(static) nowait
            for (int64_t r = 0; r < rows; ++r) {
                float *o = out + r * width;
                const float b = bias ? bias[r] : 0.0f;
                for (int64_t j = full; j < width; ++j) o[j] = b;
                for (int32_t k = crow[r]; k < crow[r + 1]; ++k) {
                    const float v = val[k];
                    const float *x = dense + (int64_t)col[k] * width;
                    for (int64_t j = full; j < width; ++j) o[j] += v * x[j];
                }
            }
        }
    }
}

static float dot(const float *a, const float *b, int64_t n) {
    vec s0 = splat(0.0f), s1 = s0, s2 = s0, s3 = s0;
    int64_t j = 0;
    for (; j + 4 * LANES <= n; j += 4 * LANES) {
        s0 += load(a + j) * load(b + j);
        s1 += load(a + j + LANES) * load(b + j + LANES);
        s2 += load(a + j + 2 * LANES) * load(b + j + 2 * LANES);
        s3 += load(a + j + 3 * LANES) * load(b + j + 3 * LANES);
    }
    const vec t = (s0 + s1) + (s2 + s3);
    float s = 0.0f;
    for (int i = 0; i < LANES; ++i) s += t[i];
    for (; j < n; ++j) s += a[j] * b[j];
    return s;
}

void sparserl_sddmm(const int32_t *crow, const int32_t *col, const float *left, const float *right,
                    float *out, int64_t rows, int64_t width) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
        const float *a = left + r * width;
        for (int32_t k = crow[r]; k < crow[r + 1]; ++k)
            out[k] = dot(a, right + (int64_t)col[k] * width, width);
    }
}

/* out[i] = src[index[i]]: reading kept weights out of a parameter, or permuting them. */
void sparserl_gather(const float *src, const int64_t *index, float *out, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) out[i] = src[index[i]];
}

/* dst[index[i]] = src[order[i]]: writing permuted kept values back into a parameter-shaped tensor. */
void sparserl_scatter(float *dst, const int64_t *index, const float *src, const int64_t *order, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) dst[index[i]] = src[order[i]];
}
