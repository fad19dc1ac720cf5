/* The doc-info scan's inner loop: the index of the next token equal to a or b.
 *
 * Plain C so that the compiler vectorises the branch-free OR over blocks of 64 tokens (Cython's
 * generated code did not); built for AVX2 and for the x86-64 baseline, picked at run time
 * (GCC/Clang function multi-versioning), plain code elsewhere. */
#include <stdint.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define INTERVENE_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define INTERVENE_CLONES
#endif

INTERVENE_CLONES
static int64_t next_hit(const uint32_t *p, int64_t i, int64_t n, uint32_t a, uint32_t b) {
    while (i + 64 <= n) {
        uint32_t hit = 0;
        for (int j = 0; j < 64; j++) {
            hit |= (uint32_t)(p[i + j] == a) | (uint32_t)(p[i + j] == b);
        }
        if (hit) {
            break;
        }
        i += 64;
    }
    for (; i < n; i++) {
        if (p[i] == a || p[i] == b) {
            return i;
        }
    }
    return n;
}
