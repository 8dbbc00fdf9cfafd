/* The max of a softmax block, written once for float and for double: pyx/softmax_kernels.pxd
 * includes this file twice, each time after defining
 *
 *   AF_T       the element type (float, double)
 *   AF_INT     the signed integer of its size (int32_t, int64_t): a lane of a comparison
 *   AF_LANES   elements in a 32-byte (AVX2) vector (8, 4)
 *   AF_SUFFIX  the suffix of the names defined here (f32, f64)
 *
 * which it undefines at its end. It defines actfast_max_<suffix> and its helper
 * actfast_take_<suffix>.
 *
 * actfast_max_<suffix>(x, mask, n, sign) is the max of sign * x[i] over the i < n with
 * mask[i] != 0 (every i when mask is NULL), NaN skipped (a NaN row is made NaN by the sum
 * instead); -inf when there is none. sign is +1 or -1 (softmin). Written with GCC's vector
 * extensions: without -ffast-math GCC does not vectorise a float max reduction (NaN and -0
 * make it order-dependent), but the max of the non-NaN values is exact in any order, so
 * explicit lanes are safe. Four vector accumulators: with one, each compare and blend would
 * wait for the previous blend (a 4-cycle chain per vector). Each step of 128 bytes asks for
 * the two lines AF_AHEAD bytes on (actfast_prefetch_ahead): this pass reads the row from
 * memory. */

#define AF_CAT_(a, b) a##b
#define AF_CAT(a, b) AF_CAT_(a, b)
#define AF_VEC AF_CAT(actfast_vec_, AF_SUFFIX)      /* AF_LANES AF_Ts */
#define AF_VINT AF_CAT(actfast_vint_, AF_SUFFIX)    /* AF_LANES AF_INTs */
#define AF_VMASK AF_CAT(actfast_vmask_, AF_SUFFIX)  /* AF_LANES mask bytes */
#define AF_TAKE AF_CAT(actfast_take_, AF_SUFFIX)
#define AF_MAX AF_CAT(actfast_max_, AF_SUFFIX)

typedef AF_T AF_VEC __attribute__((vector_size(32)));
typedef AF_INT AF_VINT __attribute__((vector_size(32)));
typedef uint8_t AF_VMASK __attribute__((vector_size(AF_LANES)));

/* *m = *v where *v > *m and keep, else *m unchanged (v > m is false for NaN: NaN never taken).
 * Through pointers: a build without AVX (ACTFAST_ARCH=portable) would warn that 32-byte
 * vectors passed or returned by value have another ABI there (-Wpsabi). */
static inline void AF_TAKE(AF_VEC *m, const AF_VEC *v, const AF_VINT *keep)
{
    AF_VINT t = (*v > *m) & *keep;
    *m = (AF_VEC)((t & (AF_VINT)*v) | (~t & (AF_VINT)*m));
}

static inline AF_T AF_MAX(const AF_T *x, const uint8_t *mask, Py_ssize_t n, AF_T sign)
{
    const AF_T ninf = -(AF_T)INFINITY;
    const AF_VINT all = ~(AF_VINT){0};          /* every lane kept */
    AF_VEC m[4], v;
    AF_VMASK keep;
    AF_VINT kept;
    Py_ssize_t i = 0;
    int k, l;
    AF_T r = ninf, y;
    for (k = 0; k < 4; k++)
        m[k] = (AF_VEC){0} + ninf;              /* -inf in every lane */
    if (mask) {
        for (; i + 4 * AF_LANES <= n; i += 4 * AF_LANES) {
            actfast_prefetch_ahead(x + i);
            actfast_prefetch_ahead(x + i + 2 * AF_LANES);
            for (k = 0; k < 4; k++) {
                memcpy(&v, x + i + AF_LANES * k, sizeof v);
                memcpy(&keep, mask + i + AF_LANES * k, sizeof keep);
                v = v * sign;
                kept = __builtin_convertvector(keep, AF_VINT) != 0;
                AF_TAKE(&m[k], &v, &kept);
            }
        }
        for (; i + AF_LANES <= n; i += AF_LANES) {
            memcpy(&v, x + i, sizeof v);
            memcpy(&keep, mask + i, sizeof keep);
            v = v * sign;
            kept = __builtin_convertvector(keep, AF_VINT) != 0;
            AF_TAKE(&m[0], &v, &kept);
        }
    } else {
        for (; i + 4 * AF_LANES <= n; i += 4 * AF_LANES) {
            actfast_prefetch_ahead(x + i);
            actfast_prefetch_ahead(x + i + 2 * AF_LANES);
            for (k = 0; k < 4; k++) {
                memcpy(&v, x + i + AF_LANES * k, sizeof v);
                v = v * sign;
                AF_TAKE(&m[k], &v, &all);
            }
        }
        for (; i + AF_LANES <= n; i += AF_LANES) {
            memcpy(&v, x + i, sizeof v);
            v = v * sign;
            AF_TAKE(&m[0], &v, &all);
        }
    }
    for (k = 0; k < 4; k++)
        for (l = 0; l < AF_LANES; l++)
            r = m[k][l] > r ? m[k][l] : r;
    for (; i < n; i++) {
        y = x[i] * sign;
        if ((!mask || mask[i]) && y > r)
            r = y;
    }
    return r;
}

#undef AF_T
#undef AF_INT
#undef AF_LANES
#undef AF_SUFFIX
#undef AF_CAT_
#undef AF_CAT
#undef AF_VEC
#undef AF_VINT
#undef AF_VMASK
#undef AF_TAKE
#undef AF_MAX
