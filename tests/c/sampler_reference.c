/* The sampler as run.c defines it, in C, so the tests can compare the Python sampler with C's
 * own integer wrap-around and float32 rounding.
 *
 *   sampler_reference rng SEED COUNT              COUNT values of random_u32, then of random_f32
 *   sampler_reference sample TEMP TOPP SEED COUNT  COUNT choices from the logits on stdin
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

typedef struct { float prob; int index; } Candidate;

static unsigned int next_u32(unsigned long long *state) {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return (unsigned int)((*state * 0x2545F4914F6CDD1Dull) >> 32);
}

static float next_f32(unsigned long long *state) {
    return (next_u32(state) >> 8) / 16777216.0f;
}

static int by_prob_descending(const void *a, const void *b) {
    float pa = ((const Candidate *)a)->prob, pb = ((const Candidate *)b)->prob;
    return pa > pb ? -1 : pa < pb ? 1 : 0;
}

static int choose_argmax(const float *p, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) if (p[i] > p[best]) best = i;
    return best;
}

static void softmax_in_place(float *x, int n) {
    float max = x[0];
    for (int i = 1; i < n; i++) if (x[i] > max) max = x[i];
    float sum = 0.0f;
    for (int i = 0; i < n; i++) { x[i] = expf(x[i] - max); sum += x[i]; }
    for (int i = 0; i < n; i++) x[i] /= sum;
}

static int choose_multinomial(const float *p, int n, float coin) {
    float cdf = 0.0f;
    for (int i = 0; i < n; i++) { cdf += p[i]; if (coin < cdf) return i; }
    return n - 1;
}

static int choose_topp(const float *p, int n, float topp, float coin, Candidate *buf) {
    const float cutoff = (1.0f - topp) / (n - 1);
    int kept = 0;
    for (int i = 0; i < n; i++)
        if (p[i] >= cutoff) { buf[kept].index = i; buf[kept].prob = p[i]; kept++; }
    qsort(buf, kept, sizeof(Candidate), by_prob_descending);
    float total = 0.0f;
    int last = kept - 1;
    for (int i = 0; i < kept; i++) {
        total += buf[i].prob;
        if (total > topp) { last = i; break; }
    }
    float r = coin * total, cdf = 0.0f;
    for (int i = 0; i <= last; i++) { cdf += buf[i].prob; if (r < cdf) return buf[i].index; }
    return buf[last].index;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "rng") == 0) {
        unsigned long long seed = strtoull(argv[2], NULL, 10), state = seed;
        int count = atoi(argv[3]);
        for (int i = 0; i < count; i++) printf("%u\n", next_u32(&state));
        state = seed;
        for (int i = 0; i < count; i++) printf("%.9g\n", next_f32(&state));
        return 0;
    }
    if (argc == 6 && strcmp(argv[1], "sample") == 0) {
        float temperature = strtof(argv[2], NULL), topp = strtof(argv[3], NULL);
        unsigned long long state = strtoull(argv[4], NULL, 10);
        int count = atoi(argv[5]), n = 0;
        float logits[4096], p[4096];
        Candidate buf[4096];
        while (n < 4096 && scanf("%f", &logits[n]) == 1) n++;
        for (int step = 0; step < count; step++) {
            memcpy(p, logits, sizeof(float) * n);
            int choice;
            if (temperature == 0.0f) {
                choice = choose_argmax(p, n);
            } else {
                for (int i = 0; i < n; i++) p[i] /= temperature;
                softmax_in_place(p, n);
                float coin = next_f32(&state);
                choice = (topp <= 0 || topp >= 1) ? choose_multinomial(p, n, coin)
                                                  : choose_topp(p, n, topp, coin, buf);
            }
            printf("%d\n", choice);
        }
        return 0;
    }
    fprintf(stderr, "usage: sampler_reference rng SEED COUNT | sample TEMP TOPP SEED COUNT\n");
    return 2;
}
