/* Exact 8-bit pooling with kernel = stride: max, min, and the average rounded half to even.

   Why a compiled kernel: numpy runs a 2x2 average as separate passes (row sums, column sums,
   rounding), each over memory; here each output row is made from its kh input rows in one pass
   while they are in cache. The numpy kernels (kernels/numpy/pools.py) stay the reference: the
   tests compare both on every shape, layout and op, byte for byte.

   pool(src, dst, kh, kw, op, divisor, threads, simd) reads a 4-D uint8 buffer src (N, C, H, W,
   any strides, negative included) and writes dst (N, C, H // kh, W // kw); op 0 max, 1 min,
   2 average of the window sum divided by `divisor`, rounded half to even and clipped to 255.
   Rows are shared out over `threads` threads with the GIL released. Three paths, one answer:
   - dense rows, channels innermost (Pillow's L, RGB, RGBA, RGBX) or planar: with SSSE3 (chosen at
     run time) byte shuffles gather each window's pixels from 16-byte loads; otherwise a
     vertical pass into a row buffer, then a horizontal one, plain loops;
   - anything else (a flipped or scattered view): a plain loop over each window. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_X86 1
#else
#define HAVE_X86 0
#endif

enum { OP_MAX = 0, OP_MIN = 1, OP_AVG = 2 };
enum { LAYOUT_GENERIC = 0, LAYOUT_DENSE = 1, LAYOUT_PLANAR = 2 };

typedef struct {
    const uint8_t *src;
    uint8_t *dst;
    Py_ssize_t n, c, h, w, ho, wo;
    Py_ssize_t ss[4], ds[4]; /* strides in bytes: n, c, h, w */
    int kh, kw, op, layout, simd;
    long divisor;
    const uint8_t *table; /* window sum -> rounded average, or NULL (computed per output) */
    Py_ssize_t units;     /* rows of work: n * ho (dense), n * c * ho (planar, generic) */
} Job;

static inline uint8_t round_average(uint32_t sum, uint32_t d)
{
    uint32_t q = sum / d, r = sum - q * d;
    if (2 * r > d || (2 * r == d && (q & 1)))
        q += 1;
    return q > 255 ? 255 : (uint8_t)q;
}

/* One output element from its window, by strides: the reference shape of every path. */
static inline uint8_t window_value(const Job *job, const uint8_t *origin, Py_ssize_t sh, Py_ssize_t sw)
{
    int i, j;
    if (job->op == OP_AVG) {
        uint32_t sum = 0;
        for (i = 0; i < job->kh; i++)
            for (j = 0; j < job->kw; j++)
                sum += origin[i * sh + j * sw];
        return job->table ? job->table[sum] : round_average(sum, (uint32_t)job->divisor);
    }
    uint8_t best = origin[0];
    for (i = 0; i < job->kh; i++)
        for (j = 0; j < job->kw; j++) {
            uint8_t v = origin[i * sh + j * sw];
            best = job->op == OP_MAX ? (v > best ? v : best) : (v < best ? v : best);
        }
    return best;
}

/* Output columns [first, wo) of one output row of one plane, element by element. */
static void generic_row(const Job *job, const uint8_t *src_row, uint8_t *dst_row, Py_ssize_t src_cs,
                        Py_ssize_t dst_cs, Py_ssize_t channels, Py_ssize_t first)
{
    Py_ssize_t q, ch;
    for (q = first; q < job->wo; q++)
        for (ch = 0; ch < channels; ch++)
            dst_row[q * job->ds[3] + ch * dst_cs] =
                window_value(job, src_row + q * job->kw * job->ss[3] + ch * src_cs, job->ss[2], job->ss[3]);
}

/* ------------------------------------------------------------------ plain dense rows (two passes) */

/* A dense row: `channels` bytes a pixel, pixels adjacent. Vertical pass over the kh rows into
   `scratch` (bytes for max/min, uint32 sums for the average), then the horizontal one. */
__attribute__((always_inline)) static inline void plain_dense_row_of(const Job *job, const uint8_t *src_row,
                                                                     uint8_t *dst_row, const Py_ssize_t channels,
                                                                     void *scratch, const int kh, const int kw)
{
    Py_ssize_t len = job->wo * kw * channels, x, q, ch;
    Py_ssize_t sh = job->ss[2];
    int i, j;
    if (job->op == OP_AVG) {
        int shift = 0;
        while ((1L << shift) < job->divisor)
            shift++;
        int by_shift = (1L << shift) == job->divisor && job->divisor <= 255L * kh * kw + 1;
        if (by_shift && (long)kh * kw * 255 + job->divisor < 65536) {
            /* sums fit uint16: the vertical pass vectorises 8 or 16 to an instruction */
            uint16_t *acc = scratch;
            uint16_t half = (uint16_t)(shift ? (1u << (shift - 1)) - 1 : 0);
            for (x = 0; x < len; x++)
                acc[x] = src_row[x];
            for (i = 1; i < kh; i++) {
                const uint8_t *row = src_row + i * sh;
                for (x = 0; x < len; x++)
                    acc[x] = (uint16_t)(acc[x] + row[x]);
            }
            for (q = 0; q < job->wo; q++)
                for (ch = 0; ch < channels; ch++) {
                    uint16_t sum = 0, out;
                    for (j = 0; j < kw; j++)
                        sum = (uint16_t)(sum + acc[(q * kw + j) * channels + ch]);
                    out = shift ? (uint16_t)((sum + half + ((sum >> shift) & 1)) >> shift) : sum;
                    dst_row[q * channels + ch] = (uint8_t)(out > 255 ? 255 : out);
                }
            return;
        }
        uint32_t *acc = scratch;
        for (x = 0; x < len; x++)
            acc[x] = src_row[x];
        for (i = 1; i < kh; i++) {
            const uint8_t *row = src_row + i * sh;
            for (x = 0; x < len; x++)
                acc[x] += row[x];
        }
        for (q = 0; q < job->wo; q++)
            for (ch = 0; ch < channels; ch++) {
                uint32_t sum = 0;
                for (j = 0; j < kw; j++)
                    sum += acc[(q * kw + j) * channels + ch];
                dst_row[q * channels + ch] = job->table ? job->table[sum] : round_average(sum, (uint32_t)job->divisor);
            }
        return;
    }
    uint8_t *acc = scratch;
    memcpy(acc, src_row, (size_t)len);
    for (i = 1; i < kh; i++) {
        const uint8_t *row = src_row + i * sh;
        if (job->op == OP_MAX)
            for (x = 0; x < len; x++)
                acc[x] = row[x] > acc[x] ? row[x] : acc[x];
        else
            for (x = 0; x < len; x++)
                acc[x] = row[x] < acc[x] ? row[x] : acc[x];
    }
    for (q = 0; q < job->wo; q++)
        for (ch = 0; ch < channels; ch++) {
            uint8_t best = acc[q * kw * channels + ch];
            for (j = 1; j < kw; j++) {
                uint8_t v = acc[(q * kw + j) * channels + ch];
                best = job->op == OP_MAX ? (v > best ? v : best) : (v < best ? v : best);
            }
            dst_row[q * channels + ch] = best;
        }
}

/* The common shapes (2x2 of one, three or four channels) with their sizes known to the compiler. */
static void plain_dense_row(const Job *job, const uint8_t *src_row, uint8_t *dst_row, Py_ssize_t channels,
                            void *scratch)
{
    if (job->kh == 2 && job->kw == 2 && channels == 4)
        plain_dense_row_of(job, src_row, dst_row, 4, scratch, 2, 2);
    else if (job->kh == 2 && job->kw == 2 && channels == 3)
        plain_dense_row_of(job, src_row, dst_row, 3, scratch, 2, 2);
    else if (job->kh == 2 && job->kw == 2 && channels == 1)
        plain_dense_row_of(job, src_row, dst_row, 1, scratch, 2, 2);
    else
        plain_dense_row_of(job, src_row, dst_row, channels, scratch, job->kh, job->kw);
}

/* ------------------------------------------------------------------ SSSE3 dense rows (one pass) */

#if HAVE_X86
/* How many output pixels one 16-byte load serves: whole windows only. */
static inline int pixels_per_load(int kw, Py_ssize_t channels) { return (int)(16 / (kw * channels)); }

/* Output columns done with 16-byte loads (the caller does the row's tail element by element).
   Byte g*kw*C + j*C + c of a load is window g's column j, channel c; a shuffle gathers column j
   of every window into place (for sums: into uint16 lanes, zero-extended by 0x80 bytes). */
__attribute__((target("ssse3"), always_inline)) static inline Py_ssize_t
ssse3_dense_row_of(const Job *job, const uint8_t *src_row, uint8_t *dst_row, Py_ssize_t channels, const int kh,
                   const int kw)
{
    int i, j, g, ch;
    int per_load = pixels_per_load(kw, channels);
    Py_ssize_t sh = job->ss[2], step = (Py_ssize_t)per_load * kw * channels, out_step = per_load * channels;
    Py_ssize_t row_bytes = job->w * channels, dst_bytes = job->wo * channels, x, q = 0;
    uint8_t gather[16][16];
    uint8_t bytes[16];
    __m128i masks[16];
    if (per_load < 1 || out_step > 8)
        return 0;
    for (j = 0; j < kw; j++) {
        memset(gather[j], 0x80, 16);
        for (g = 0; g < per_load; g++)
            for (ch = 0; ch < channels; ch++) {
                int from = (g * kw + j) * (int)channels + ch, to = g * (int)channels + ch;
                gather[j][job->op == OP_AVG ? 2 * to : to] = (uint8_t)from;
            }
        masks[j] = _mm_loadu_si128((const __m128i *)gather[j]);
    }
    if (job->op != OP_AVG) {
        /* the extreme of the loads at +j*C over rows and columns: byte g*kw*C + c then holds
           window g's extreme for channel c, which the column-0 shuffle gathers */
        for (x = 0; x + (kw - 1) * channels + 16 <= row_bytes; x += step) {
            __m128i best = _mm_loadu_si128((const __m128i *)(src_row + x));
            for (i = 0; i < kh; i++)
                for (j = i == 0 ? 1 : 0; j < kw; j++) {
                    __m128i v = _mm_loadu_si128((const __m128i *)(src_row + i * sh + x + j * channels));
                    best = job->op == OP_MAX ? _mm_max_epu8(best, v) : _mm_min_epu8(best, v);
                }
            best = _mm_shuffle_epi8(best, masks[0]);
            if (q * channels + 8 <= dst_bytes)
                _mm_storel_epi64((__m128i *)(dst_row + q * channels), best);
            else {
                _mm_storeu_si128((__m128i *)bytes, best);
                memcpy(dst_row + q * channels, bytes, (size_t)out_step);
            }
            q += per_load;
        }
        return q;
    }
    {
        int shift = 0;
        long most = (long)kh * kw * 255;
        while ((1L << shift) < job->divisor)
            shift++;
        /* shifts while every rounded sum stays below 2^15 (packus reads int16), else the table */
        int by_shift = (1L << shift) == job->divisor && (most >> shift) < 32767 && most + job->divisor / 2 < 65536;
        __m128i count = _mm_cvtsi32_si128(shift);
        __m128i half = _mm_set1_epi16((short)(shift ? (1 << (shift - 1)) - 1 : 0));
        __m128i one = _mm_set1_epi16(1);
        if (!by_shift && job->table == NULL)
            return 0;
        for (x = 0; x + 16 <= row_bytes; x += step) {
            __m128i total = _mm_setzero_si128();
            for (i = 0; i < kh; i++) {
                __m128i v = _mm_loadu_si128((const __m128i *)(src_row + i * sh + x));
                for (j = 0; j < kw; j++)
                    total = _mm_add_epi16(total, _mm_shuffle_epi8(v, masks[j]));
            }
            if (by_shift) {
                /* (s + d/2 - 1 + (s >> shift & 1)) >> shift: half to even */
                __m128i parity = _mm_and_si128(_mm_srl_epi16(total, count), one);
                __m128i rounded = shift ? _mm_srl_epi16(_mm_add_epi16(_mm_add_epi16(total, half), parity), count) : total;
                __m128i packed = _mm_packus_epi16(rounded, rounded);
                if (q * channels + 8 <= dst_bytes)
                    _mm_storel_epi64((__m128i *)(dst_row + q * channels), packed);
                else {
                    _mm_storeu_si128((__m128i *)bytes, packed);
                    memcpy(dst_row + q * channels, bytes, (size_t)out_step);
                }
            } else {
                uint16_t sums[8];
                _mm_storeu_si128((__m128i *)sums, total);
                for (g = 0; g < out_step; g++)
                    dst_row[q * channels + g] = job->table[sums[g]];
            }
            q += per_load;
        }
        return q;
    }
}
/* The common kernels with their sizes known to the compiler, so the loops over the window unroll. */
__attribute__((target("ssse3"))) static Py_ssize_t ssse3_dense_row(const Job *job, const uint8_t *src_row,
                                                                    uint8_t *dst_row, Py_ssize_t channels)
{
    if (job->kh == 2 && job->kw == 2)
        return ssse3_dense_row_of(job, src_row, dst_row, channels, 2, 2);
    if (job->kh == 3 && job->kw == 3)
        return ssse3_dense_row_of(job, src_row, dst_row, channels, 3, 3);
    if (job->kh == 4 && job->kw == 4)
        return ssse3_dense_row_of(job, src_row, dst_row, channels, 4, 4);
    return ssse3_dense_row_of(job, src_row, dst_row, channels, job->kh, job->kw);
}
#endif

/* ------------------------------------------------------------------ the rows of one thread */

typedef struct {
    const Job *job;
    Py_ssize_t first, stop; /* units */
    int failed;
} Part;

static void *run_part(void *arg)
{
    Part *part = arg;
    const Job *job = part->job;
    Py_ssize_t unit;
    void *scratch = NULL;
    if (job->layout != LAYOUT_GENERIC) {
        Py_ssize_t channels = job->layout == LAYOUT_DENSE ? job->c : 1;
        scratch = malloc((size_t)(job->wo * job->kw * channels + 16) * 4);
        if (scratch == NULL) {
            part->failed = 1;
            return NULL;
        }
    }
    for (unit = part->first; unit < part->stop; unit++) {
        Py_ssize_t row = unit % job->ho, plane = unit / job->ho, n, ch = 0, channels;
        if (job->layout == LAYOUT_DENSE) {
            n = plane;
            channels = job->c;
        } else {
            n = plane / job->c;
            ch = plane % job->c;
            channels = 1;
        }
        const uint8_t *src_row = job->src + n * job->ss[0] + ch * job->ss[1] + row * job->kh * job->ss[2];
        uint8_t *dst_row = job->dst + n * job->ds[0] + ch * job->ds[1] + row * job->ds[2];
        if (job->layout == LAYOUT_GENERIC) {
            generic_row(job, src_row, dst_row, 0, 0, 1, 0);
            continue;
        }
        Py_ssize_t done = 0;
#if HAVE_X86
        if (job->simd && job->kw * channels <= 16 && job->kh * job->kw <= 256)
            done = ssse3_dense_row(job, src_row, dst_row, channels);
#endif
        if (done == 0) {
            plain_dense_row(job, src_row, dst_row, channels, scratch);
            continue;
        }
        {
            Py_ssize_t q, k;
            for (q = done; q < job->wo; q++)
                for (k = 0; k < channels; k++)
                    dst_row[q * channels + k] = window_value(job, src_row + q * job->kw * channels + k, job->ss[2], channels);
        }
    }
    free(scratch);
    return NULL;
}

static int run_job(const Job *job, int threads)
{
    Part parts[64];
    pthread_t ids[64];
    int started[64] = {0};
    int count = threads < 1 ? 1 : (threads > 64 ? 64 : threads), t, failed = 0;
    if (count > job->units)
        count = job->units > 0 ? (int)job->units : 1;
    for (t = 0; t < count; t++) {
        parts[t].job = job;
        parts[t].first = job->units * t / count;
        parts[t].stop = job->units * (t + 1) / count;
        parts[t].failed = 0;
    }
    for (t = 1; t < count; t++)
        started[t] = pthread_create(&ids[t], NULL, run_part, &parts[t]) == 0;
    for (t = 1; t < count; t++)
        if (!started[t])
            run_part(&parts[t]); /* no thread to be had: this one does it */
    run_part(&parts[0]);
    for (t = 1; t < count; t++)
        if (started[t])
            pthread_join(ids[t], NULL);
    for (t = 0; t < count; t++)
        failed |= parts[t].failed;
    return failed ? -1 : 0;
}

/* ------------------------------------------------------------------ Python */

static int simd_available(void)
{
#if HAVE_X86 && defined(__GNUC__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("ssse3");
#else
    return 0;
#endif
}

static int byte_buffer(PyObject *object, Py_buffer *view, int writable, const char *name)
{
    if (PyObject_GetBuffer(object, view, PyBUF_RECORDS_RO | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    if (view->ndim != 4 || view->itemsize != 1 || (view->format && strcmp(view->format, "B") != 0)) {
        PyErr_Format(PyExc_ValueError, "%s must be a 4-D uint8 array", name);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* The lowest and one past the highest byte a 4-D view touches. */
static void extent(const Py_buffer *view, const uint8_t **low, const uint8_t **high)
{
    const uint8_t *lo = view->buf, *hi = view->buf;
    int a;
    for (a = 0; a < 4; a++) {
        if (view->shape[a] == 0) {
            *low = *high = view->buf;
            return;
        }
        Py_ssize_t reach = (view->shape[a] - 1) * view->strides[a];
        if (reach < 0)
            lo += reach;
        else
            hi += reach;
    }
    *low = lo;
    *high = hi + 1;
}

static PyObject *pool(PyObject *self, PyObject *args)
{
    PyObject *src_object, *dst_object;
    int kh, kw, op, threads = 1, simd = 1;
    long divisor = 1;
    Py_buffer src, dst;
    Job job;
    uint8_t *table = NULL;
    int a, status;
    const uint8_t *src_low, *src_high, *dst_low, *dst_high;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOiiil|ip", &src_object, &dst_object, &kh, &kw, &op, &divisor, &threads, &simd))
        return NULL;
    if (kh < 1 || kw < 1 || op < OP_MAX || op > OP_AVG || (op == OP_AVG && (divisor < 1 || divisor > INT32_MAX))) {
        PyErr_SetString(PyExc_ValueError, "kernel sizes and the divisor (below 2^31) must be positive, op 0, 1 or 2");
        return NULL;
    }
    if (op == OP_AVG && (long long)kh * kw > (long long)(UINT32_MAX / 255)) {
        PyErr_SetString(PyExc_ValueError, "a window of over 2^24 pixels: its sum would not fit 32 bits");
        return NULL;
    }
    if (byte_buffer(src_object, &src, 0, "src") < 0)
        return NULL;
    if (byte_buffer(dst_object, &dst, 1, "dst") < 0) {
        PyBuffer_Release(&src);
        return NULL;
    }
    memset(&job, 0, sizeof job);
    job.n = src.shape[0], job.c = src.shape[1], job.h = src.shape[2], job.w = src.shape[3];
    job.ho = job.h / kh, job.wo = job.w / kw;
    if (dst.shape[0] != job.n || dst.shape[1] != job.c || dst.shape[2] != job.ho || dst.shape[3] != job.wo) {
        PyErr_Format(PyExc_ValueError, "dst must be (%zd, %zd, %zd, %zd) for this src and kernel", job.n, job.c,
                     job.ho, job.wo);
        goto fail;
    }
    extent(&src, &src_low, &src_high);
    extent(&dst, &dst_low, &dst_high);
    if (src_low < dst_high && dst_low < src_high && dst_high > dst_low && src_high > src_low) {
        PyErr_SetString(PyExc_ValueError, "dst must not overlap src");
        goto fail;
    }
    for (a = 0; a < 4; a++) {
        job.ss[a] = src.strides[a];
        job.ds[a] = dst.strides[a];
    }
    job.src = src.buf, job.dst = dst.buf, job.kh = kh, job.kw = kw, job.op = op, job.divisor = divisor;
    job.simd = simd && simd_available();
    if (job.ss[1] == 1 && job.ds[1] == 1 && job.ss[3] == job.c && job.ds[3] == job.c && job.c > 0) {
        job.layout = LAYOUT_DENSE;
        job.units = job.n * job.ho;
    } else {
        job.layout = (job.ss[3] == 1 && job.ds[3] == 1) ? LAYOUT_PLANAR : LAYOUT_GENERIC;
        job.units = job.n * job.c * job.ho;
    }
    if (op == OP_AVG && (long long)kh * kw <= 4096) {
        uint32_t most = (uint32_t)(kh * kw * 255), s;
        table = malloc(most + 1);
        if (table == NULL) {
            PyErr_NoMemory();
            goto fail;
        }
        for (s = 0; s <= most; s++)
            table[s] = round_average(s, (uint32_t)divisor);
        job.table = table;
    }
    if (job.units > 0 && job.wo > 0) {
        Py_BEGIN_ALLOW_THREADS
        status = run_job(&job, threads);
        Py_END_ALLOW_THREADS
        if (status < 0) {
            PyErr_NoMemory();
            goto fail;
        }
    }
    free(table);
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    Py_RETURN_NONE;
fail:
    free(table);
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    return NULL;
}

static PyObject *features(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    return Py_BuildValue("(s)", simd_available() ? "ssse3" : "plain");
}

static PyMethodDef methods[] = {
    {"pool", pool, METH_VARARGS,
     "pool(src, dst, kh, kw, op, divisor, threads=1, simd=True): exact uint8 pooling, kernel = stride."},
    {"features", features, METH_NOARGS, "The instruction sets this machine lends the kernel: ('ssse3',) or ('plain',)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_pool", "Exact uint8 pooling, kernel = stride.", -1,
                                    methods};

PyMODINIT_FUNC PyInit__pool(void) { return PyModule_Create(&module); }
