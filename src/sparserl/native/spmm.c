/* Sparse x dense products for sparserl's training path (see sparserl/native/__init__.py).
 *
 * Both kernels take a CSR matrix A (rows x cols: int32 row pointers `crow`, int32 column indices
 * `col`, float32 values `val`) and row-major float32 dense operands of `width` columns.
 *
 *   sparserl_csr_mm:  out[r, :] = bias[r] + sum_k val[k] * dense[col[k], :]    (out = A @ dense + b)
 *   sparserl_sddmm:   out[k]    = dot(left[r, :], right[col[k], :])             for each kept (r, col[k])
 *
 * csr_mm works on column tiles of 64 floats held in eight AVX2 registers while the row's kept
 * entries stream past, tile by tile, so each tile of `dense` is reused from cache by every row;
 * rows are split across OpenMP threads (the caller's OpenMP runtime, i.e. PyTorch's). Without AVX2
 * and FMA the same loops are written in plain C.
 */
#include <stdint.h>
#include <string.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define SPARSERL_AVX2 1
#endif

#define TILE 64

static void row_tile(const int32_t *crow, const int32_t *col, const float *val, const float *dense,
                     float b, float *o, int64_t r, int64_t j0, int64_t width) {
#ifdef SPARSERL_AVX2
    __m256 a0 = _mm256_set1_ps(b), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (int32_t k = crow[r]; k < crow[r + 1]; ++k) {
        const __m256 v = _mm256_set1_ps(val[k]);
        const float *x = dense + (int64_t)col[k] * width + j0;
        a0 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x), a0);
        a1 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + 8), a1);
        a2 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + 16), a2);
        a3 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + 24), a3);
        a4 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + 32), a4);
        a5 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + 40), a5);
        a6 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + 48), a6);
        a7 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + 56), a7);
    }
    float *y = o + j0;
    _mm256_storeu_ps(y, a0);      _mm256_storeu_ps(y + 8, a1);
    _mm256_storeu_ps(y + 16, a2); _mm256_storeu_ps(y + 24, a3);
    _mm256_storeu_ps(y + 32, a4); _mm256_storeu_ps(y + 40, a5);
    _mm256_storeu_ps(y + 48, a6); _mm256_storeu_ps(y + 56, a7);
#else
    float acc[TILE];
    for (int j = 0; j < TILE; ++j) acc[j] = b;
    for (int32_t k = crow[r]; k < crow[r + 1]; ++k) {
        const float v = val[k];
        const float *x = dense + (int64_t)col[k] * width + j0;
        for (int j = 0; j < TILE; ++j) acc[j] += v * x[j];
    }
    memcpy(o + j0, acc, sizeof acc);
#endif
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
    int64_t j = 0;
    float s = 0.0f;
#ifdef SPARSERL_AVX2
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (; j + 32 <= n; j += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 8), _mm256_loadu_ps(b + j + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 16), _mm256_loadu_ps(b + j + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 24), _mm256_loadu_ps(b + j + 24), s3);
    }
    __m256 t = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    s = _mm_cvtss_f32(h);
#endif
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
